package supervise

import (
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestSeccompFilterArm64 runs the arm64 filter in x/net/bpf's VM (records
// written big-endian: the values the kernel's native loads see).
func TestSeccompFilterArm64(t *testing.T) {
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
		{"execve", unix.AUDIT_ARCH_AARCH64, unix.SYS_EXECVE, trace | traceNative},
		{"execveat", unix.AUDIT_ARCH_AARCH64, unix.SYS_EXECVEAT, trace | traceNative},
		{"connect", unix.AUDIT_ARCH_AARCH64, unix.SYS_CONNECT, trace | traceNative},
		{"sendto", unix.AUDIT_ARCH_AARCH64, unix.SYS_SENDTO, trace | traceNative},
		{"sendmsg", unix.AUDIT_ARCH_AARCH64, unix.SYS_SENDMSG, trace | traceNative},
		{"sendmmsg", unix.AUDIT_ARCH_AARCH64, unix.SYS_SENDMMSG, trace | traceNative},
		{"bind", unix.AUDIT_ARCH_AARCH64, unix.SYS_BIND, trace | traceNative},
		{"listen", unix.AUDIT_ARCH_AARCH64, unix.SYS_LISTEN, trace | traceNative},
		{"openat runs", unix.AUDIT_ARCH_AARCH64, unix.SYS_OPENAT, unix.SECCOMP_RET_ALLOW},
		{"write runs", unix.AUDIT_ARCH_AARCH64, unix.SYS_WRITE, unix.SECCOMP_RET_ALLOW},
		{"arm32 execve", unix.AUDIT_ARCH_ARM, 11, trace | traceForeign},
		{"arm32 connect", unix.AUDIT_ARCH_ARM, 283, trace | traceForeign},
		{"arm32 read runs", unix.AUDIT_ARCH_ARM, 3, unix.SECCOMP_RET_ALLOW},
		{"other arch runs", unix.AUDIT_ARCH_X86_64, 59, unix.SECCOMP_RET_ALLOW},
		{"io_uring_setup refused", unix.AUDIT_ARCH_AARCH64, unix.SYS_IO_URING_SETUP, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"io_uring_enter refused", unix.AUDIT_ARCH_AARCH64, unix.SYS_IO_URING_ENTER, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"io_uring_register refused", unix.AUDIT_ARCH_AARCH64, unix.SYS_IO_URING_REGISTER, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"pidfd_send_signal runs", unix.AUDIT_ARCH_AARCH64, unix.SYS_PIDFD_SEND_SIGNAL, unix.SECCOMP_RET_ALLOW},
		{"arm32 io_uring_setup refused", unix.AUDIT_ARCH_ARM, 425, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"arm32 io_uring_register refused", unix.AUDIT_ARCH_ARM, 427, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"arm32 open_tree runs", unix.AUDIT_ARCH_ARM, 428, unix.SECCOMP_RET_ALLOW},
		{"other arch io_uring runs", unix.AUDIT_ARCH_X86_64, 425, unix.SECCOMP_RET_ALLOW},
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
