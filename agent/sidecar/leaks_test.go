package sidecar

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

// TestShipperForgetsGoneBatches: the shipper counts the 5xx failures of a
// batch while later ones are stored (to set it aside after PoisonAfter);
// a counted batch that leaves the spool another way (here: set aside when
// the console then answers 400) must not stay counted. 300 such batches:
// the counts stay within what the spool holds (they kept one per batch
// for the life of the sidecar: 300 here). Rounds are driven by deliver itself, so
// no timing is involved.
func TestShipperForgetsGoneBatches(t *testing.T) {
	const rounds = 300
	cc, c := newConsole(t, &policy.Policy{})
	target, _ := url.Parse(cc.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = cc.HTTP.Transport
	flaky := regexp.MustCompile(`flaky \d+`)
	var mu sync.Mutex
	seen := map[string]bool{}
	// In front of the real console: a batch holding "flaky N" fails with
	// 500 the first time and is refused (400) after that.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if m := flaky.Find(body); m != nil {
			mu.Lock()
			again := seen[string(m)]
			seen[string(m)] = true
			mu.Unlock()
			if again {
				http.Error(w, `{"error":"bad batch"}`, http.StatusBadRequest)
			} else {
				http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
			}
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	via := &Console{BaseURL: proxy.URL, Token: c.Token, HTTP: proxy.Client()}
	s := NewShipper(via, t.TempDir(), nil)
	ctx := context.Background()
	most := 0
	for i := range rounds {
		s.Add(rec(fmt.Sprintf("flaky %d", i)))
		s.spool()
		s.Add(rec(fmt.Sprintf("stored %d", i)))
		s.spool()
		// The last round's flaky batch is refused and set aside; this
		// round's fails once, and is counted when "stored" gets through.
		if err := s.deliver(ctx); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		most = max(most, len(s.failures))
	}
	if n := len(s.batches()); n != 1 {
		t.Fatalf("%d batches left in the spool, want the last flaky one", n)
	}
	// At most the batch set aside in a round (counted before) and the one
	// counted in it; the next round forgets the first.
	if most > 2 {
		t.Errorf("the shipper counted failures of %d batches at once; the spool never held more than two that failed", most)
	}
	if got := s.SetAside(); got != rounds-1 {
		t.Errorf("SetAside = %d, want %d", got, rounds-1)
	}
}
