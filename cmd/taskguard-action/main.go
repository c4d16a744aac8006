// Command taskguard-action is the GitHub Action's program (see action.yml).
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
