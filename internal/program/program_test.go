package program

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantOut  string
	}{
		{"ok", nil, ExitOK, ""},
		{"plain error", errors.New("read task.json: no such file"), ExitError, "tg: read task.json: no such file\n"},
		{"blocked", Blocked(errors.New("2 critical vulnerabilities")), ExitBlocked, "tg: 2 critical vulnerabilities\n"},
		{"silent code", &Error{Code: ExitBlocked}, ExitBlocked, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &cobra.Command{Use: "tg", RunE: func(*cobra.Command, []string) error { return tt.err }}
			cmd.SetArgs(nil)
			var stderr bytes.Buffer
			if got := run(context.Background(), cmd, &stderr); got != tt.wantCode {
				t.Errorf("code = %d, want %d", got, tt.wantCode)
			}
			if got := stderr.String(); got != tt.wantOut {
				t.Errorf("stderr = %q, want %q", got, tt.wantOut)
			}
		})
	}
}

func TestUsageErrorIsExit2(t *testing.T) {
	cmd := &cobra.Command{Use: "tg", Args: cobra.ExactArgs(1), RunE: func(*cobra.Command, []string) error { return nil }}
	cmd.SetArgs([]string{})
	var stderr bytes.Buffer
	if got := run(context.Background(), cmd, &stderr); got != ExitError {
		t.Fatalf("code = %d, want %d", got, ExitError)
	}
	if !strings.Contains(stderr.String(), "accepts 1 arg") {
		t.Fatalf("stderr = %q", stderr.String())
	}
}
