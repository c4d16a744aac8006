package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskguard/taskguard/internal/program"
)

// TestTimeoutExplain: only a run that failed once its own bound had passed
// is said to have given up; a cancelled parent, a gate's verdict, a
// success and a failure before the bound are left as they are.
func TestTimeoutExplain(t *testing.T) {
	tm := Timeout{After: 2 * time.Second, Setting: "--timeout", Example: "--timeout %s"}
	cause := errors.New("fetch image r: read: connection reset")
	tests := []struct {
		name       string
		parentStop bool          // the parent is cancelled (SIGINT)
		wait       time.Duration // how long the run lasts
		err        error
		want       string // "" : the error as it is
	}{
		{"failed past the bound", false, 3 * time.Second, cause,
			"gave up after 2s (--timeout): fetch image r: read: connection reset; a slow registry or DB mirror, or a large image, may need more time, e.g. --timeout 10m0s"},
		{"failed before the bound", false, time.Second, cause, ""},
		{"blocked past the bound", false, 3 * time.Second, program.Blocked(cause), ""},
		{"succeeded past the bound", false, 3 * time.Second, nil, ""},
		{"parent cancelled", true, time.Second, cause, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				parent, stop := context.WithCancel(context.Background())
				defer stop()
				ctx, cancel := tm.Context(parent)
				defer cancel()
				if tt.parentStop {
					stop()
				}
				time.Sleep(tt.wait) // the fake clock of the bubble
				got := tm.Explain(ctx, tt.err)
				if tt.want == "" {
					if got != tt.err {
						t.Errorf("Explain = %v, want the error as it is: %v", got, tt.err)
					}
					return
				}
				if got == nil || got.Error() != tt.want || !errors.Is(got, cause) {
					t.Errorf("Explain = %v\nwant %s (wrapping the cause)", got, tt.want)
				}
				if program.Code(got) != program.ExitError {
					t.Errorf("exit code %d, want 2", program.Code(got))
				}
				if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) || context.Cause(ctx).Error() != context.DeadlineExceeded.Error() {
					t.Errorf("the bound's cause %v does not read as context.DeadlineExceeded", context.Cause(ctx))
				}
			})
		})
	}
}

func TestTimeoutZeroAndNegative(t *testing.T) {
	ctx, cancel := Timeout{}.Context(context.Background())
	defer cancel()
	if _, ok := ctx.Deadline(); ok {
		t.Error("a zero Timeout set a deadline")
	}
	err := Timeout{After: -time.Second, Setting: "--timeout"}.Check()
	if err == nil || !strings.Contains(err.Error(), "--timeout -1s: want a duration") {
		t.Errorf("Check of -1s = %v", err)
	}
	if got := (Timeout{After: time.Hour}).suggest(); got != 2*time.Hour {
		t.Errorf("suggest for 1h = %s, want 2h", got)
	}
	if got := fmt.Sprint((Timeout{After: time.Minute}).suggest()); got != "10m0s" {
		t.Errorf("suggest for 1m = %s, want 10m0s (the default)", got)
	}
}

// TestErrIncomplete: a scan that returned after its context ended is not a
// result.
func TestErrIncomplete(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if err := ErrIncomplete(ctx, "scan r"); err != nil {
		t.Errorf("live context: %v", err)
	}
	cancel()
	if err := ErrIncomplete(ctx, "scan r"); err == nil || err.Error() != "scan r: context canceled" {
		t.Errorf("ended context: %v", err)
	}
}

// TestTimeoutRun: Run returns a run's own error, explained when it failed
// past the bound, and returns by itself StopGrace after the bound when the
// run does not heed its context.
func TestTimeoutRun(t *testing.T) {
	tm := Timeout{After: 2 * time.Second, Setting: "--timeout", Example: "--timeout %s"}
	t.Run("returns in time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			want := errors.New("parse image reference")
			if err := tm.Run(context.Background(), func(context.Context) error { return want }); err != want {
				t.Errorf("Run = %v, want %v", err, want)
			}
		})
	})
	t.Run("heeds its context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			err := tm.Run(context.Background(), func(ctx context.Context) error {
				<-ctx.Done()
				return fmt.Errorf("fetch image r: %w", ctx.Err())
			})
			if !errors.Is(err, ErrGaveUp) || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "gave up after 2s (--timeout): fetch image r: context deadline exceeded; ") {
				t.Errorf("Run = %v", err)
			}
			if d := time.Since(start); d != 2*time.Second {
				t.Errorf("Run returned after %s of the bubble's clock, want 2s", d)
			}
		})
	})
	t.Run("ignores its context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			stuck := make(chan struct{})
			defer close(stuck) // lets the run end with the bubble
			start := time.Now()
			err := tm.Run(context.Background(), func(context.Context) error {
				<-stuck
				return nil
			})
			want := "gave up after 2s (--timeout): the run did not stop within 30s of its end (context deadline exceeded); "
			if !errors.Is(err, ErrGaveUp) || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Run = %v, want %s…", err, want)
			}
			if d := time.Since(start); d != 2*time.Second+StopGrace {
				t.Errorf("Run returned after %s of the bubble's clock, want 2s + %s", d, StopGrace)
			}
		})
	})
	t.Run("a blocked gate stays blocked", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			err := tm.Run(context.Background(), func(ctx context.Context) error {
				<-ctx.Done()
				return program.Blocked(errors.New("blocked by the gate"))
			})
			if program.Code(err) != program.ExitBlocked || errors.Is(err, ErrGaveUp) {
				t.Errorf("Run = %v (code %d), want the gate's verdict", err, program.Code(err))
			}
		})
	})
}
