package supervise

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// denyEntry refuses the call tid is stopped at (a syscall-entry stop) with EPERM.
func denyEntry(tid int) error {
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &regs); err != nil {
		return fmt.Errorf("read the registers to refuse the call: %w", err)
	}
	return deny(tid, &regs, unix.EPERM)
}
