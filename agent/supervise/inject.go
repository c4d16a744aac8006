package supervise

// InjectEvent is a process reaching into another one: ptrace
// PTRACE_ATTACH or PTRACE_SEIZE, or process_vm_readv/process_vm_writev of
// another process.
type InjectEvent struct {
	Caller
	// Target is the pid the call names.
	Target int
	// Call names it ("ptrace(PTRACE_ATTACH)", "process_vm_writev", ...).
	Call string
}

// InjectHandler is implemented by a Handler that decides on InjectEvents.
// ptrace, process_vm_readv and process_vm_writev are supervised by both
// mechanisms (rare calls: no cost to ordinary programs); a Deny refuses the
// call with EPERM.
type InjectHandler interface {
	Inject(InjectEvent) Verdict
}
