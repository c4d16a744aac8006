// Command helper does what the defender's end-to-end tests need an app to do
// that a shell cannot: exec from a thread other than the main one, listen.
package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: helper thread-exec PATH ARGV... | listen ADDR")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "thread-exec":
		done := make(chan error)
		go func() {
			runtime.LockOSThread() // a new thread: the main goroutine holds the main one
			if syscall.Gettid() == syscall.Getpid() {
				done <- fmt.Errorf("still on the main thread")
				return
			}
			done <- syscall.Exec(os.Args[2], os.Args[3:], os.Environ())
		}()
		runtime.LockOSThread()
		err := <-done
		fmt.Fprintf(os.Stderr, "thread exec: %v\n", err)
		os.Exit(1)
	case "listen":
		l, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			fmt.Fprintf(os.Stderr, "listen: %v\n", err)
			os.Exit(1)
		}
		l.Close()
		fmt.Println("listened")
	}
}
