package testenv

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

var _ io.Writer = (*SyncBuffer)(nil)

// TestSyncBuffer: goroutines log through one SyncBuffer while the test reads
// it; every line arrives whole (run with -race, which also proves the reads
// and writes are guarded).
func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	if got := b.String(); got != "" {
		t.Fatalf("zero SyncBuffer holds %q, want nothing", got)
	}
	log := slog.New(slog.NewTextHandler(&b, nil))
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // reads while the writers write
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
				_ = b.String()
			}
		}
	}()
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				log.Info("line", "writer", w, "i", i)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-readerDone
	out := b.String()
	if n := strings.Count(out, "\n"); n != writers*lines {
		t.Fatalf("%d lines, want %d", n, writers*lines)
	}
	for w := range writers {
		for _, i := range []int{0, lines - 1} {
			if want := fmt.Sprintf("msg=line writer=%d i=%d\n", w, i); !strings.Contains(out, want) {
				t.Errorf("the log lacks %q", want)
			}
		}
	}
	n, err := b.Write([]byte("tail"))
	if n != 4 || err != nil || !strings.HasSuffix(b.String(), "\ntail") {
		t.Fatalf("Write = %d, %v; buffer ends %q, want the bytes appended", n, err, out[max(0, len(out)-10):])
	}
}
