package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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
// console is away. A batch keeps its record IDs across retries, and the
// console stores a record once per ID, so a retry never duplicates.
//
// No batch is held hostage: one the console refuses (a 4xx other than 401,
// 403, 408 and 429) is moved aside to SpoolDir/rejected, counted, logged
// and reported to the console as a defender audit, and the next batch goes.
// Failures that may pass (network, 408, 429, 5xx) are retried with
// exponential backoff and jitter. A refused credential (401/403: revoked,
// expired) is reported once and retried only every AuthBackoff. A batch the
// console keeps failing on (5xx) while later batches are stored is moved
// aside after PoisonAfter rounds. On shutdown (ctx ends: SIGTERM) what is
// in memory is written to the spool before Run returns, and audits added
// after that are written straight to the spool.
type Shipper struct {
	Sink     audit.Sink
	SpoolDir string
	// MaxSpool is how many batches may wait on disk; beyond it the oldest
	// are dropped and a high-severity audit says how many records were lost.
	MaxSpool int
	// FlushEvery is the batching window; MaxBatch flushes early and bounds
	// a batch (at most 1000, the console's limit).
	FlushEvery time.Duration
	MaxBatch   int
	// Backoff bounds the retry delay (it doubles from MinBackoff to
	// MaxBackoff; each wait is drawn between half of it and all of it).
	MinBackoff, MaxBackoff time.Duration
	// AuthBackoff is the wait after the console refused the credential.
	AuthBackoff time.Duration
	// PoisonAfter is how many rounds a batch may fail with 5xx while later
	// batches are stored before it is moved aside.
	PoisonAfter int
	// FinalDelivery bounds the last delivery attempt on shutdown (ECS gives
	// a task 30 s between SIGTERM and SIGKILL by default).
	FinalDelivery time.Duration
	Log           *slog.Logger

	mu      sync.Mutex
	pending []api.Audit
	closed  bool
	kick    chan struct{}
	seq     atomic.Int64
	// spoolMu serialises the writers of the spool directory.
	spoolMu sync.Mutex
	// sending is the batch a delivery round is sending (spoolMu held): a
	// full spool makes room with the others, so a batch being delivered is
	// never also reported dropped.
	sending string

	// Owned by the delivering goroutine.
	failures     map[string]int
	authReported bool
	aside        atomic.Int64
}

// Limits of one spooled batch, below the console's (1000 records, 4 MiB).
const (
	maxBatchRecords = 1000
	maxBatchBytes   = 2 << 20
	// maxField is the size every text field is cut to before spooling,
	// mark included (audit.CutText: "…[cut by the defender: N more
	// bytes]"): what the console stores whole (it cuts beyond 16 KiB, with
	// its own mark), so the mark that reaches it says the defender cut.
	maxField = 16 << 10
	// maxAside is how many set-aside batches are kept on disk.
	maxAside = 100
	// shippingRule marks the shipper's own reports, so that a refused report
	// is logged rather than reported again.
	shippingRule = "audit-shipping"
)

// NewShipper returns a shipper with default batching, spool size and backoff;
// set fields before Run to change them.
func NewShipper(sink audit.Sink, spoolDir string, log *slog.Logger) *Shipper {
	s := &Shipper{Sink: sink, SpoolDir: spoolDir, Log: log}
	s.defaults()
	return s
}

// Add queues one audit. It never blocks on the network; after shutdown began
// it writes the audit to the spool at once.
func (s *Shipper) Add(a api.Audit) {
	s.mu.Lock()
	s.pending = append(s.pending, a)
	n, closed := len(s.pending), s.closed
	s.mu.Unlock()
	if closed {
		s.spool()
		return
	}
	if n >= s.MaxBatch {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// SetAside is how many batches were moved aside since the shipper started.
func (s *Shipper) SetAside() int64 { return s.aside.Load() }

func (s *Shipper) defaults() {
	if s.MaxSpool == 0 {
		s.MaxSpool = 1000
	}
	if s.FlushEvery == 0 {
		s.FlushEvery = time.Second
	}
	if s.MaxBatch <= 0 || s.MaxBatch > maxBatchRecords {
		s.MaxBatch = min(max(s.MaxBatch, 200), maxBatchRecords)
	}
	if s.MinBackoff == 0 {
		s.MinBackoff = 500 * time.Millisecond
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.AuthBackoff == 0 {
		s.AuthBackoff = 2 * time.Minute
	}
	if s.PoisonAfter == 0 {
		s.PoisonAfter = 3
	}
	if s.FinalDelivery == 0 {
		s.FinalDelivery = 3 * time.Second
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.kick == nil {
		s.kick = make(chan struct{}, 1)
	}
	if s.failures == nil {
		s.failures = map[string]int{}
	}
}

// Run ships until ctx ends, then spools what is pending and tries once more
// (for at most FinalDelivery). Delivery runs beside the batching: while a
// slow console holds a delivery round (each request may take up to the
// client's timeout, and a round goes through the whole spool), what is
// added is still spooled every FlushEvery (or MaxBatch records), never
// kept in memory until the round ends.
func (s *Shipper) Run(ctx context.Context) error {
	s.defaults()
	if err := os.MkdirAll(s.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	backoff := time.Duration(0)
	next := time.Now()
	tick := time.NewTicker(s.FlushEvery)
	defer tick.Stop()
	// delivered carries the result of the round in progress (busy); one
	// round at a time, so the delivery state (failures, authReported) has
	// one owner at a time.
	delivered := make(chan error, 1)
	busy := false
	for {
		select {
		case <-ctx.Done():
			if busy {
				<-delivered // its requests end with ctx
			}
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			s.spool()
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.FinalDelivery)
			_ = s.deliver(final)
			cancel()
			return nil
		case err := <-delivered:
			busy = false
			if wait, ok := s.retryAfter(ctx, err, &backoff); ok {
				next = time.Now().Add(wait)
				s.Log.Warn("audits not delivered; spooled, retrying", "err", err, "retry_in", wait)
			}
			continue
		case <-tick.C:
		case <-s.kick:
		}
		s.spool()
		if busy || time.Now().Before(next) {
			continue
		}
		busy = true
		go func() { delivered <- s.deliver(ctx) }()
	}
}

// retryAfter is the wait before the next round after a round that ended
// with err; ok is false when the next round may come at once (success, or
// the shipper stops). backoff is the exponential backoff so far.
func (s *Shipper) retryAfter(ctx context.Context, err error, backoff *time.Duration) (wait time.Duration, ok bool) {
	if err == nil {
		*backoff = 0
		return 0, false
	}
	if ctx.Err() != nil {
		return 0, false
	}
	var de *deliveryError
	if errors.As(err, &de) && de.auth {
		wait = s.AuthBackoff
	} else {
		*backoff = min(max(2**backoff, s.MinBackoff), s.MaxBackoff)
		wait = jitter(*backoff)
	}
	if de != nil && de.retryAfter > wait {
		wait = min(de.retryAfter, 5*time.Minute)
	}
	return wait, true
}

// jitter draws a wait between half of d and d, so that the defenders of many
// tasks do not come back to a console all at once.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// spool writes the pending audits, aggregated and made safe (text as the
// console would store it), as batches of at most MaxBatch records and
// maxBatchBytes. When the spool is full the oldest batches make room, and
// the new batch carries a high-severity record saying how many audits were
// lost.
func (s *Shipper) spool() {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	s.spoolMu.Lock()
	defer s.spoolMu.Unlock()
	batch = audit.Aggregate(batch)
	for i := range batch {
		batch[i], _ = batch[i].SanitizedWith(maxField, audit.CutText)
	}
	for len(batch) > 0 {
		n, size := 0, 0
		for n < len(batch) && n < s.MaxBatch {
			b, _ := json.Marshal(batch[n])
			if n > 0 && size+len(b)+1 > maxBatchBytes {
				break
			}
			size += len(b) + 1
			n++
		}
		s.writeBatch(batch[:n])
		batch = batch[n:]
	}
}

// writeBatch writes one batch file (synced, then renamed into place).
func (s *Shipper) writeBatch(batch []api.Audit) {
	if dropped := s.makeRoom(); dropped > 0 {
		batch = append(batch, s.report("high", fmt.Sprintf("Audit spool full: %d audits were dropped", dropped)))
	}
	b, err := json.Marshal(api.AuditBatch{Audits: batch})
	if err != nil {
		s.Log.Error("encode audit batch", "err", err)
		return
	}
	name := fmt.Sprintf("%020d-%06d.json", time.Now().UnixNano(), s.seq.Add(1))
	tmp := filepath.Join(s.SpoolDir, "."+name)
	err = writeSynced(tmp, b)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.SpoolDir, name))
	}
	if err != nil {
		// Not silent: the loss is logged with its size.
		s.Log.Error("audit batch lost: cannot spool it", "err", err, "records", len(batch))
	}
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// report is the shipper's own audit about audit delivery.
func (s *Shipper) report(severity, msg string) api.Audit {
	return api.Audit{ID: audit.NewID(), Time: audit.Now(), Kind: api.AuditDefender, Effect: policy.EffectAlert,
		Severity: severity, Rule: shippingRule, Message: msg}
}

func (s *Shipper) batches() []string {
	ents, _ := os.ReadDir(s.SpoolDir)
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
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
	held := 0
	if i := slices.Index(names, s.sending); s.sending != "" && i >= 0 {
		names = slices.Delete(names, i, i+1)
		held = 1
	}
	n := 0
	for len(names) > 0 && len(names)+held >= s.MaxSpool {
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

// deliveryError is why a delivery round stopped.
type deliveryError struct {
	err        error
	auth       bool          // the console refused the credential
	retryAfter time.Duration // the console's Retry-After
}

func (e *deliveryError) Error() string { return e.err.Error() }
func (e *deliveryError) Unwrap() error { return e.err }

// poster is a sink that returns the console's answer (the sidecar's Console).
type poster interface {
	PostAudits(ctx context.Context, audits []api.Audit) (api.AuditIngestResponse, error)
}

func (s *Shipper) send(ctx context.Context, audits []api.Audit) (api.AuditIngestResponse, error) {
	if p, ok := s.Sink.(poster); ok {
		return p.PostAudits(ctx, audits)
	}
	return api.AuditIngestResponse{}, s.Sink.Send(ctx, audits)
}

// deliver sends spooled batches oldest first. It goes on past a batch the
// console refuses (set aside) and past one it fails on once another batch
// gets through; it stops at a refused credential, a network failure, or
// when two batches in a row fail.
func (s *Shipper) deliver(ctx context.Context) error {
	s.defaults()
	var failed []string // batches that failed with 5xx since the last success
	var lastErr error
	names := s.batches()
	s.forgetGone(names)
	defer s.setSending("")
	for _, name := range names {
		p := filepath.Join(s.SpoolDir, name)
		s.setSending(name)
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var batch api.AuditBatch
		if err := json.Unmarshal(b, &batch); err != nil {
			s.setAside(name, batch, "the spooled file is not a batch: "+err.Error())
			continue
		}
		res, err := s.send(ctx, batch.Audits)
		if err == nil {
			_ = os.Remove(p)
			delete(s.failures, name)
			s.authReported = false
			s.reportRejected(res, batch)
			for _, f := range failed {
				// The console works, yet fails on this batch.
				if s.failures[f]++; s.failures[f] >= s.PoisonAfter {
					delete(s.failures, f)
					s.setAside(f, readBatch(filepath.Join(s.SpoolDir, f)), fmt.Sprintf("the console failed on it %d times while later batches were stored", s.PoisonAfter))
				}
			}
			failed, lastErr = nil, nil
			continue
		}
		if ctx.Err() != nil {
			return err
		}
		var se *api.StatusError
		if !errors.As(err, &se) {
			// No answer: the console is away.
			return &deliveryError{err: fmt.Errorf("batch %s: %w", strings.TrimSuffix(name, ".json"), err)}
		}
		switch {
		case se.Unauthorized():
			if !s.authReported {
				s.authReported = true
				s.Log.Error("the console refuses the agent credential (revoked or expired?); audits stay in the spool until it is replaced",
					"status", se.StatusCode, "retry_in", s.AuthBackoff)
				s.Add(s.report("critical", fmt.Sprintf("The console refused the defender's credential (%d %s): audits are kept in the spool until it is replaced", se.StatusCode, http.StatusText(se.StatusCode))))
			}
			return &deliveryError{err: fmt.Errorf("batch %s: %w", strings.TrimSuffix(name, ".json"), err), auth: true}
		case !se.Temporary():
			s.setAside(name, batch, se.Error())
			continue
		}
		d := &deliveryError{err: fmt.Errorf("batch %s: %w", strings.TrimSuffix(name, ".json"), err), retryAfter: time.Duration(se.RetryAfter) * time.Second}
		if se.StatusCode < 500 || len(failed) > 0 {
			// Overloaded (408, 429), or a second failure in a row: wait.
			return d
		}
		failed, lastErr = append(failed, name), d
	}
	return lastErr
}

// setSending marks name as the batch being delivered ("": none).
func (s *Shipper) setSending(name string) {
	s.spoolMu.Lock()
	s.sending = name
	s.spoolMu.Unlock()
}

// forgetGone drops the failure counts of batches no longer in the spool
// (names): one counted may leave it without being stored (set aside for a
// 4xx, dropped to make room), and its count would stay for good.
func (s *Shipper) forgetGone(names []string) {
	if len(s.failures) == 0 {
		return
	}
	spooled := make(map[string]bool, len(names))
	for _, n := range names {
		spooled[n] = true
	}
	maps.DeleteFunc(s.failures, func(name string, _ int) bool { return !spooled[name] })
}

func readBatch(path string) api.AuditBatch {
	var batch api.AuditBatch
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &batch)
	}
	return batch
}

// setAside moves a batch out of the way of the others, keeps it for an
// operator in SpoolDir/rejected (the newest maxAside), counts, logs and
// reports it.
func (s *Shipper) setAside(name string, batch api.AuditBatch, why string) {
	dir := filepath.Join(s.SpoolDir, "rejected")
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = os.Rename(filepath.Join(s.SpoolDir, name), filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(filepath.Join(s.SpoolDir, name))
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > maxAside {
		for _, e := range ents[:len(ents)-maxAside] {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	s.aside.Add(1)
	records := 0
	onlyReports := len(batch.Audits) > 0
	for _, a := range batch.Audits {
		records += max(a.Count, 1)
		onlyReports = onlyReports && a.Rule == shippingRule
	}
	s.Log.Error("audit batch set aside: the console refused it", "batch", strings.TrimSuffix(name, ".json"),
		"records", records, "reason", why, "kept_in", dir, "set_aside_total", s.aside.Load())
	if !onlyReports {
		s.Add(s.report("high", fmt.Sprintf("Audit batch of %d audits set aside, not stored by the console: %s", records, audit.CutText(why, 512))))
	}
}

// reportRejected reports the records a console answer names as not stored.
func (s *Shipper) reportRejected(res api.AuditIngestResponse, batch api.AuditBatch) {
	if len(res.Rejected) == 0 {
		return
	}
	var reasons []string
	onlyReports := true
	for _, r := range res.Rejected {
		if r.Index >= 0 && r.Index < len(batch.Audits) && batch.Audits[r.Index].Rule != shippingRule {
			onlyReports = false
		}
		if len(reasons) < 3 {
			reasons = append(reasons, r.Reason)
		}
	}
	s.Log.Error("the console did not store some audits", "rejected", len(res.Rejected), "of", res.Received, "reasons", reasons)
	if !onlyReports {
		s.Add(s.report("high", fmt.Sprintf("The console did not store %d of %d audits: %s", len(res.Rejected), res.Received,
			audit.CutText(strings.Join(reasons, "; "), 1024))))
	}
}
