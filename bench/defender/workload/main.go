// Command workload runs one of the defender benchmark's workloads and
// prints its rate in operations per second:
//
//	workload exec N      fork+exec of /bin/true, N times
//	workload files DIR N create, write and remove N files in DIR
//	workload connect N   N TCP connects to a loopback listener
//	workload dial ADDR N N TCP connects to a listener at ADDR (host:port)
//	workload serve ADDR  accept and close connections at ADDR until killed
//	                     (the listener of dial, in another network namespace)
//	workload udpsend N   N send(2) (sendto with no address) of 64 bytes on a
//	                     UDP socket connected to a loopback port
//	workload tcpsendmsg N N sendmsg(2) of 64 bytes on a TCP connection to a
//	                     loopback listener
//
// udpsend and tcpsendmsg make the calls with golang.org/x/sys/unix, as C
// programs do: Go's net package writes on connected sockets with write(2),
// which the defender never stops.
//
// WORKLOAD_DELAY (a duration, e.g. 2s) makes it wait that long before it
// starts, so that a counter (bench/defender/syscalls.sh) can attach to the
// supervisor first.
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if d, err := time.ParseDuration(os.Getenv("WORKLOAD_DELAY")); err == nil && d > 0 {
		time.Sleep(d)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) == 2 && args[0] == "serve" {
		return serve(args[1])
	}
	if len(args) < 2 {
		return fmt.Errorf("usage: workload exec N | files DIR N | connect N | dial ADDR N | serve ADDR | udpsend N | tcpsendmsg N")
	}
	n, err := strconv.Atoi(args[len(args)-1])
	if err != nil || n <= 0 {
		return fmt.Errorf("count %q is not a positive number", args[len(args)-1])
	}
	if args[0] == "udpsend" || args[0] == "tcpsendmsg" {
		return sends(args[0], n)
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
	case "dial":
		for range n {
			c, err := net.Dial("tcp", args[1])
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

// sends runs the udpsend and tcpsendmsg workloads: the sockets are set up
// first, so that only the sends are timed.
func sends(kind string, n int) error {
	msg := make([]byte, 64)
	var fd int
	var drain func()
	if kind == "udpsend" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer pc.Close()
		go func() {
			b := make([]byte, 2048)
			for {
				if _, _, err := pc.ReadFrom(b); err != nil {
					return
				}
			}
		}()
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			b := make([]byte, 64<<10)
			for {
				if _, err := c.Read(b); err != nil {
					return
				}
			}
		}()
		drain = func() { <-done }
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	}
	start := time.Now()
	for range n {
		var err error
		if kind == "udpsend" {
			err = unix.Send(fd, msg, 0)
		} else {
			_, err = unix.SendmsgN(fd, msg, nil, nil, 0)
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	elapsed := time.Since(start)
	unix.Close(fd)
	if drain != nil {
		drain()
	}
	fmt.Printf("%.1f\n", float64(n)/elapsed.Seconds())
	return nil
}

// serve accepts connections at addr and closes them, until killed.
func serve(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		c.Close()
	}
}
