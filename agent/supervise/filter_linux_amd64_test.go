package supervise

import (
	"slices"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func TestSupervisedNumbersDoNotOverlap(t *testing.T) {
	for _, nr := range i386Supervised {
		if slices.Contains(nativeSupervised, nr) {
			t.Errorf("i386 number %d is also a supervised native number: the tracer could not tell the ABI", nr)
		}
	}
}

// TestSeccompFilter runs the filter in x/net/bpf's VM over seccomp_data
// records. The VM loads big-endian, so the records are written big-endian:
// the same values the kernel's native-endian loads see.
func TestSeccompFilter(t *testing.T) {
	vm, err := bpf.NewVM(seccompInstructions(unix.SECCOMP_RET_TRACE|traceNative, unix.SECCOMP_RET_TRACE|traceForeign))
	if err != nil {
		t.Fatal(err)
	}
	for _, notify := range []bool{false, true} {
		if _, err := seccompProgram(notify); err != nil {
			t.Fatal(err)
		}
	}
	const trace = uint32(unix.SECCOMP_RET_TRACE)
	tests := []struct {
		name     string
		arch, nr uint32
		want     uint32
	}{
		{"execve", unix.AUDIT_ARCH_X86_64, unix.SYS_EXECVE, trace | traceNative},
		{"execveat", unix.AUDIT_ARCH_X86_64, unix.SYS_EXECVEAT, trace | traceNative},
		{"connect", unix.AUDIT_ARCH_X86_64, unix.SYS_CONNECT, trace | traceNative},
		{"sendto", unix.AUDIT_ARCH_X86_64, unix.SYS_SENDTO, trace | traceNative},
		{"sendmsg", unix.AUDIT_ARCH_X86_64, unix.SYS_SENDMSG, trace | traceNative},
		{"sendmmsg", unix.AUDIT_ARCH_X86_64, unix.SYS_SENDMMSG, trace | traceNative},
		{"bind", unix.AUDIT_ARCH_X86_64, unix.SYS_BIND, trace | traceNative},
		{"listen", unix.AUDIT_ARCH_X86_64, unix.SYS_LISTEN, trace | traceNative},
		{"openat runs", unix.AUDIT_ARCH_X86_64, unix.SYS_OPENAT, unix.SECCOMP_RET_ALLOW},
		{"write runs", unix.AUDIT_ARCH_X86_64, unix.SYS_WRITE, unix.SECCOMP_RET_ALLOW},
		{"x32 refused", unix.AUDIT_ARCH_X86_64, 0x40000000 | 59, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{"i386 execve", unix.AUDIT_ARCH_I386, 11, trace | traceForeign},
		{"i386 socketcall", unix.AUDIT_ARCH_I386, 102, trace | traceForeign},
		{"i386 read runs", unix.AUDIT_ARCH_I386, 3, unix.SECCOMP_RET_ALLOW},
		{"io_uring_setup refused", unix.AUDIT_ARCH_X86_64, unix.SYS_IO_URING_SETUP, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"io_uring_enter refused", unix.AUDIT_ARCH_X86_64, unix.SYS_IO_URING_ENTER, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"io_uring_register refused", unix.AUDIT_ARCH_X86_64, unix.SYS_IO_URING_REGISTER, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"pidfd_send_signal runs", unix.AUDIT_ARCH_X86_64, unix.SYS_PIDFD_SEND_SIGNAL, unix.SECCOMP_RET_ALLOW},
		{"open_tree runs", unix.AUDIT_ARCH_X86_64, unix.SYS_OPEN_TREE, unix.SECCOMP_RET_ALLOW},
		{"x32 io_uring_setup refused as x32", unix.AUDIT_ARCH_X86_64, 0x40000000 | 425, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{"i386 io_uring_setup refused", unix.AUDIT_ARCH_I386, 425, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"i386 io_uring_register refused", unix.AUDIT_ARCH_I386, 427, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"i386 pidfd_send_signal runs", unix.AUDIT_ARCH_I386, 424, unix.SECCOMP_RET_ALLOW},
		{"other arch runs", unix.AUDIT_ARCH_ARM, 425, unix.SECCOMP_RET_ALLOW},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vm.Run(seccompData(tt.arch, tt.nr))
			if err != nil {
				t.Fatal(err)
			}
			if uint32(got) != tt.want {
				t.Errorf("filter returned %#x, want %#x", got, tt.want)
			}
		})
	}
}

// TestSeccompFilterWithoutSends runs the filter Config.IgnoreSends installs:
// its jumps are counted again without the send calls.
func TestSeccompFilterWithoutSends(t *testing.T) {
	vm, err := bpf.NewVM(seccompInstructionsFor(unix.SECCOMP_RET_TRACE|traceNative, unix.SECCOMP_RET_TRACE|traceForeign, false))
	if err != nil {
		t.Fatal(err)
	}
	const trace = uint32(unix.SECCOMP_RET_TRACE)
	for _, tt := range []struct {
		name     string
		arch, nr uint32
		want     uint32
	}{
		{"connect", unix.AUDIT_ARCH_X86_64, unix.SYS_CONNECT, trace | traceNative},
		{"listen", unix.AUDIT_ARCH_X86_64, unix.SYS_LISTEN, trace | traceNative},
		{"sendto runs", unix.AUDIT_ARCH_X86_64, unix.SYS_SENDTO, unix.SECCOMP_RET_ALLOW},
		{"sendmsg runs", unix.AUDIT_ARCH_X86_64, unix.SYS_SENDMSG, unix.SECCOMP_RET_ALLOW},
		{"io_uring_setup refused", unix.AUDIT_ARCH_X86_64, unix.SYS_IO_URING_SETUP, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"x32 refused", unix.AUDIT_ARCH_X86_64, 0x40000000 | 42, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{"i386 connect", unix.AUDIT_ARCH_I386, 362, trace | traceForeign},
		{"i386 socketcall", unix.AUDIT_ARCH_I386, 102, trace | traceForeign},
		{"i386 sendto runs", unix.AUDIT_ARCH_I386, 369, unix.SECCOMP_RET_ALLOW},
		{"i386 io_uring_enter refused", unix.AUDIT_ARCH_I386, 426, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"other arch runs", unix.AUDIT_ARCH_ARM, 426, unix.SECCOMP_RET_ALLOW},
	} {
		got, err := vm.Run(seccompData(tt.arch, tt.nr))
		if err != nil {
			t.Fatal(err)
		}
		if uint32(got) != tt.want {
			t.Errorf("%s: filter returned %#x, want %#x", tt.name, got, tt.want)
		}
	}
}
