package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

// TestReadFailure: a layer read that the caller's context ended (a
// --timeout, a cancel) is reported as interrupted, not as a corrupt layer.
func TestReadFailure(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("GET blob: %w", context.DeadlineExceeded), "interrupted"},
		{fmt.Errorf("read: %w", context.Canceled), "interrupted"},
		{io.ErrUnexpectedEOF, "corrupt or truncated layer"},
		{errors.New("gzip: invalid header"), "corrupt or truncated layer"},
	} {
		if got := readFailure(c.err); got != c.want {
			t.Errorf("readFailure(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
