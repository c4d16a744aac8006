// Command taskguard scans images, gates CI builds and protects Fargate task definitions.
package main

import (
	"os"

	"github.com/taskguard/taskguard/cli"
	"github.com/taskguard/taskguard/internal/program"
)

func main() { os.Exit(program.Main(cli.NewRootCommand())) }
