// Command workload runs one of the defender benchmark's workloads and
// prints its rate in operations per second:
//
//	workload exec N      fork+exec of /bin/true, N times
//	workload files DIR N create, write and remove N files in DIR
//	workload connect N   N TCP connects to a loopback listener
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: workload exec N | files DIR N | connect N")
	}
	n, err := strconv.Atoi(args[len(args)-1])
	if err != nil || n <= 0 {
		return fmt.Errorf("count %q is not a positive number", args[len(args)-1])
	}
	start := time.Now()
	switch args[0] {
	case "exec":
		for range n {
			if err := exec.Command("/bin/true").Run(); err != nil {
				return fmt.Errorf("run /bin/true: %w", err)
			}
		}
	case "files":
		dir := args[1]
		for i := range n {
			p := filepath.Join(dir, "f"+strconv.Itoa(i))
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte("x")); err != nil {
				return err
			}
			f.Close()
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	case "connect":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		for range n {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			c.Close()
		}
	default:
		return fmt.Errorf("unknown workload %q", args[0])
	}
	fmt.Printf("%.1f\n", float64(n)/time.Since(start).Seconds())
	return nil
}
