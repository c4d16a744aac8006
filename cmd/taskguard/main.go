// Command taskguard scans images, gates CI builds and protects Fargate task definitions.
package main

import (
	"os"

	"github.com/taskguard/taskguard/cli"
	"github.com/taskguard/taskguard/internal/program"
	_ "github.com/taskguard/taskguard/scanners/image/isal" // ISA-L inflates gzip layers when libisal2 is installed
)

func main() { os.Exit(program.Main(cli.NewRootCommand())) }
