package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskguard/taskguard/agent/audit"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// Shipper batches audits, spools each batch to disk before sending it and
// deletes it once the sink accepted it, so nothing is lost while the
// console is away. A batch keeps its record IDs across retries.
type Shipper struct {
	Sink     audit.Sink
	SpoolDir string
	// MaxSpool is how many batches may wait on disk; beyond it the oldest
	// are dropped and a high-severity audit says how many records were lost.
	MaxSpool int
	// FlushEvery is the batching window; MaxBatch flushes early.
	FlushEvery time.Duration
	MaxBatch   int
	// Backoff bounds the retry delay (it doubles from MinBackoff to MaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger

	mu      sync.Mutex
	pending []api.Audit
	kick    chan struct{}
	seq     atomic.Int64
}

// NewShipper returns a shipper with default batching, spool size and backoff;
// set fields before Run to change them.
func NewShipper(sink audit.Sink, spoolDir string, log *slog.Logger) *Shipper {
	s := &Shipper{Sink: sink, SpoolDir: spoolDir, Log: log}
	s.defaults()
	return s
}

// Add queues one audit. It never blocks.
func (s *Shipper) Add(a api.Audit) {
	s.mu.Lock()
	s.pending = append(s.pending, a)
	n := len(s.pending)
	s.mu.Unlock()
	if n >= s.MaxBatch {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Shipper) defaults() {
	if s.MaxSpool == 0 {
		s.MaxSpool = 1000
	}
	if s.FlushEvery == 0 {
		s.FlushEvery = time.Second
	}
	if s.MaxBatch == 0 {
		s.MaxBatch = 200
	}
	if s.MinBackoff == 0 {
		s.MinBackoff = 500 * time.Millisecond
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.kick == nil {
		s.kick = make(chan struct{}, 1)
	}
}

// Run ships until ctx ends, then spools what is pending and tries once more.
func (s *Shipper) Run(ctx context.Context) error {
	s.defaults()
	if err := os.MkdirAll(s.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	backoff := time.Duration(0)
	next := time.Now()
	tick := time.NewTicker(s.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.spool()
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			_ = s.deliver(final)
			cancel()
			return nil
		case <-tick.C:
		case <-s.kick:
		}
		s.spool()
		if time.Now().Before(next) {
			continue
		}
		if err := s.deliver(ctx); err != nil {
			backoff = min(max(2*backoff, s.MinBackoff), s.MaxBackoff)
			next = time.Now().Add(backoff)
			s.Log.Warn("audits not delivered; spooled, retrying", "err", err, "retry_in", backoff)
			continue
		}
		backoff = 0
	}
}

// spool writes the pending audits, aggregated, as one batch file. When the
// spool is full the oldest batches make room, and the new batch carries a
// high-severity record saying how many audits were lost.
func (s *Shipper) spool() {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if dropped := s.makeRoom(); dropped > 0 {
		batch = append(batch, api.Audit{ID: audit.NewID(), Time: audit.Now(), Kind: api.AuditDefender,
			Effect: policy.EffectAlert, Severity: "high",
			Message: fmt.Sprintf("Audit spool full: %d audits were dropped", dropped)})
	}
	batch = audit.Aggregate(batch)
	b, err := json.Marshal(api.AuditBatch{Audits: batch})
	if err != nil {
		s.Log.Error("encode audit batch", "err", err)
		return
	}
	name := fmt.Sprintf("%020d-%06d.json", time.Now().UnixNano(), s.seq.Add(1))
	tmp := filepath.Join(s.SpoolDir, "."+name)
	err = os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.SpoolDir, name))
	}
	if err != nil {
		// Not silent: the loss is logged with its size.
		s.Log.Error("audit batch lost: cannot spool it", "err", err, "records", len(batch))
	}
}

func (s *Shipper) batches() []string {
	ents, _ := os.ReadDir(s.SpoolDir)
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// makeRoom drops the oldest batches so one more fits, and returns how many
// records they held.
func (s *Shipper) makeRoom() int {
	names := s.batches()
	n := 0
	for len(names) >= s.MaxSpool {
		p := filepath.Join(s.SpoolDir, names[0])
		if b, err := os.ReadFile(p); err == nil {
			var batch api.AuditBatch
			if json.Unmarshal(b, &batch) == nil {
				for _, a := range batch.Audits {
					n += max(a.Count, 1)
				}
			}
		}
		_ = os.Remove(p)
		names = names[1:]
	}
	return n
}

// deliver sends spooled batches oldest first, stopping at the first failure.
func (s *Shipper) deliver(ctx context.Context) error {
	for _, name := range s.batches() {
		p := filepath.Join(s.SpoolDir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var batch api.AuditBatch
		if err := json.Unmarshal(b, &batch); err != nil {
			s.Log.Error("corrupt spooled batch removed", "file", name, "err", err)
			_ = os.Remove(p)
			continue
		}
		if err := s.Sink.Send(ctx, batch.Audits); err != nil {
			return fmt.Errorf("batch %s: %w", strings.TrimSuffix(name, ".json"), err)
		}
		_ = os.Remove(p)
	}
	return nil
}
