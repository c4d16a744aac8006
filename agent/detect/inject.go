package detect

// Inject runs the process-injection detector on a ptrace attach or a
// process_vm_readv/writev of process target by exe.
func (en *Engine) Inject(call string, target int, exe string) []Finding {
	what := "process " + itoa(target)
	if t := en.exe(target); t != "" {
		what += " (" + t + ")"
	}
	return []Finding{{Detector: Injection, Message: "Process injection: " + exe + " called " + call + " on " + what}}
}
