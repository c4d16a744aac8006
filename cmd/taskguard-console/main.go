// Command taskguard-console serves the taskguard console API.
package main

import (
	"os"

	"github.com/taskguard/taskguard/console"
	"github.com/taskguard/taskguard/internal/program"
)

func main() { os.Exit(program.Main(console.NewCommand())) }
