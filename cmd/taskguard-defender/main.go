// Command taskguard-defender is taskguard's in-task defender: the launcher
// that prefixes every app container's argv, and the sidecar.
package main

import (
	"os"

	// The defender image has no CA bundle: a console whose certificate a
	// public CA signed is verified with these roots (used only when the
	// system has none).
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/taskguard/taskguard/agent/command"
	"github.com/taskguard/taskguard/internal/program"
)

func main() { os.Exit(program.Main(command.New())) }
