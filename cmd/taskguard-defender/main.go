// Command taskguard-defender is taskguard's in-task defender: the launcher
// that prefixes every app container's argv, and the sidecar.
package main

import (
	"os"

	"github.com/taskguard/taskguard/agent/command"
	"github.com/taskguard/taskguard/internal/program"
)

func main() { os.Exit(program.Main(command.New())) }
