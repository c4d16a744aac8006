package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestWalkSkipsOverlongPaths: an entry whose name is longer than PATH_MAX
// (tar's PAX records allow 1 MiB) cannot exist in a container's
// filesystem; the walk skips it with one warning line of bounded length
// and passes on the other files. Before, a 600 KB name of depth 300,000
// cost hours of directory lookups (4 s at depth 16,000), and was passed on.
func TestWalkSkipsOverlongPaths(t *testing.T) {
	long := strings.Repeat("a/", 300_000) + "f"
	limit := strings.Repeat("b/", maxPathLen/2-1) + "g" // exactly maxPathLen-1 bytes
	var logs bytes.Buffer
	im := &Image{Name: "long", img: imageOf(t, []entry{
		{name: long, body: "deep"},
		{name: limit, body: "at the limit"},
		{name: "ok", body: "ok"},
	}), max: DefaultMaxFileSize, logger: slog.New(slog.NewTextHandler(&logs, nil))}
	assertFiles(t, collect(t, im), map[string]string{limit: "at the limit", "ok": "ok"})
	if !strings.Contains(logs.String(), "longer than PATH_MAX") || !strings.Contains(logs.String(), "bytes more") {
		t.Errorf("no warning about the long entry; log: %.500s", logs.String())
	}
	if logs.Len() > 2048 {
		t.Errorf("the warning is %d bytes long, want it cut", logs.Len())
	}
}

// TestFlattenWorkBounded: a layer of deep paths of PATH_MAX length (each
// costs ~4 MB of directory lookups; 4,000 of them reach the 16 GiB budget)
// fails the walk with errFlattenWork once the walk's budget is spent
// (a small one here), instead of hashing for hours; the same entries
// under the budget pass.
func TestFlattenWorkBounded(t *testing.T) {
	var entries []entry
	for i := range 100 {
		entries = append(entries, entry{name: strings.Repeat("d/", maxPathLen/2-4) + fmt.Sprintf("%03d", i), body: "x"})
	}
	layer := tarBytes(t, entries)
	// Each entry looks up its 2,044 directories: ~4.2 MB.
	for _, c := range []struct {
		budget  int64
		wantErr bool
	}{{1 << 30, false}, {64 << 20, true}} {
		f := newFlattener(DefaultMaxFileSize, slog.New(slog.DiscardHandler))
		f.budget = c.budget
		n := 0
		err := f.layer(context.Background(), "deep", bytes.NewReader(layer), func(File) error { n++; return nil })
		if c.wantErr {
			if !errors.Is(err, errFlattenWork) || !strings.Contains(err.Error(), "layer deep") {
				t.Fatalf("budget %d: %v (%d files), want errFlattenWork naming the layer", c.budget, err, n)
			}
			continue
		}
		if err != nil || n != 100 {
			t.Fatalf("budget %d: %d files, %v; want 100", c.budget, n, err)
		}
		if f.work < 100*(3<<20) || f.work > 100*(9<<20) {
			t.Fatalf("work %d for 100 entries of 2,044 directories, want ~4.2 MB each", f.work)
		}
	}
}
