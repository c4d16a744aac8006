// Command taskguard-action is the GitHub Action's program (see action.yml).
//
// It does not import scanners/image/isal (ISA-L loaded at run time), so that
// it stays a static executable: action/install.sh runs it wherever the job
// runs, a job container included (Alpine/musl, distroless), where a binary
// linked against glibc does not start; and GitHub-hosted runners do not
// install libisal2, so the import would change nothing there unless a job
// installs it (docs/releases.md, "The GitHub Action's binary").
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-githubactions"

	"github.com/taskguard/taskguard/action"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	gha := githubactions.New()
	code, err := action.Run(ctx, gha, action.Options{})
	stop()
	if err != nil {
		action.ReportError(gha, err)
	}
	os.Exit(code)
}
