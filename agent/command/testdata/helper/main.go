// Command helper does what the defender's end-to-end tests need an app to do
// that a shell cannot: exec from a thread other than the main one, listen.
package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
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
	case "dns":
		// dns MODE SERVER NAME: send one query for NAME to SERVER (ip:port)
		// by MODE: sendto (unconnected UDP), send (connected UDP, no
		// address), sendmsg, tcp (length-prefixed over a connected stream).
		if len(os.Args) != 5 {
			fmt.Fprintln(os.Stderr, "usage: helper dns sendto|send|sendmsg|tcp SERVER NAME")
			os.Exit(2)
		}
		if err := sendQuery(os.Args[2], os.Args[3], os.Args[4]); err != nil {
			fmt.Fprintf(os.Stderr, "dns %s: %v\n", os.Args[2], err)
			os.Exit(1)
		}
		fmt.Println("sent")
	case "resolve":
		// resolve NAME: look NAME up with Go's own resolver, which sends
		// its queries with write(2) on a connected UDP socket.
		r := &net.Resolver{PreferGo: true}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := r.LookupHost(ctx, os.Args[2])
		if err != nil {
			fmt.Fprintf(os.Stderr, "resolve: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(addrs, " "))
	case "no-ptrace":
		// Run a program where ptrace is refused, as in a container without SYS_PTRACE.
		if err := denyPtrace(); err != nil {
			fmt.Fprintf(os.Stderr, "deny ptrace: %v\n", err)
			os.Exit(1)
		}
		err := syscall.Exec(os.Args[2], os.Args[2:], os.Environ())
		fmt.Fprintf(os.Stderr, "exec: %v\n", err)
		os.Exit(1)
	}
}

func denyPtrace() error {
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_PTRACE, SkipFalse: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
	})
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	const tsync = 1 // SECCOMP_FILTER_FLAG_TSYNC: every thread of this process
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, tsync, uintptr(unsafe.Pointer(&prog))); e != 0 {
		return e
	}
	return nil
}

func sendQuery(mode, server, name string) error {
	ap, err := netip.ParseAddrPort(server)
	if err != nil {
		return err
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q, err := m.Pack()
	if err != nil {
		return err
	}
	var family int
	var sa unix.Sockaddr
	if ap.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	typ := unix.SOCK_DGRAM
	if mode == "tcp" {
		typ = unix.SOCK_STREAM
	}
	fd, err := unix.Socket(family, typ, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	switch mode {
	case "sendto":
		return unix.Sendto(fd, q, 0, sa)
	case "sendmsg":
		_, err := unix.SendmsgN(fd, q, nil, sa, 0)
		return err
	case "send":
		if err := unix.Connect(fd, sa); err != nil {
			return err
		}
		return unix.Sendto(fd, q, 0, nil)
	case "tcp":
		if err := unix.Connect(fd, sa); err != nil {
			return err
		}
		return unix.Sendto(fd, append([]byte{byte(len(q) >> 8), byte(len(q))}, q...), 0, nil)
	}
	return fmt.Errorf("unknown mode %q", mode)
}
