// Package program runs one of taskguard's command trees as a process: it wires
// SIGINT/SIGTERM to the command's context, prints a failing command's error and
// turns it into the exit code. Every cmd/*/main.go is one call to Main.
package program

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes shared by every taskguard program.
const (
	// ExitOK means the program did its job and, for a gate, the gate passed.
	ExitOK = 0
	// ExitBlocked means a gate blocked: findings violate the policy.
	ExitBlocked = 1
	// ExitError means the program could not run: bad input, an unreachable
	// registry or console, an internal failure.
	ExitError = 2
)

// Error carries an exit code with its cause. Commands return it to choose a
// code other than ExitError for a failure.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Blocked returns an error that exits with ExitBlocked and prints err.
func Blocked(err error) error { return &Error{Code: ExitBlocked, Err: err} }

// Code returns the exit code for err: ExitOK for nil, the code of a wrapped
// *Error, or ExitError.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitError
}

// Main runs cmd with os.Args and returns the process exit code. The error, if
// any, is printed once to stderr as "<program>: <error>".
func Main(cmd *cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cmd, os.Stderr)
}

func run(ctx context.Context, cmd *cobra.Command, stderr io.Writer) int {
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	err := cmd.ExecuteContext(ctx)
	var e *Error
	if err != nil && !(errors.As(err, &e) && e.Err == nil) {
		fmt.Fprintf(stderr, "%s: %v\n", cmd.Name(), err)
	}
	return Code(err)
}
