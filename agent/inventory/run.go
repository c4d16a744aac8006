package inventory

import (
	"context"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/internal/customcheck"
)

// Defaults of a Schedule.
const (
	DefaultDelay    = 30 * time.Second
	DefaultInterval = 24 * time.Hour
)

// EnvOptOut names the environment variable that turns scanning off ("off").
const EnvOptOut = "TASKGUARD_INVENTORY"

// Enabled reports whether the environment leaves scanning on (the default).
func Enabled(getenv func(string) string) bool {
	switch strings.ToLower(strings.TrimSpace(getenv(EnvOptOut))) {
	case "off", "0", "false", "no":
		return false
	}
	return true
}

// Schedule is when and as whom the launcher inventories its container.
type Schedule struct {
	Options
	// Identity and TaskID label the inventory.
	Identity policy.Identity
	TaskID   string
	// ImageDigest labels the inventory when known.
	ImageDigest string
	// Delay is the wait after the app starts; 0 means DefaultDelay, a
	// negative value none.
	Delay time.Duration
	// Interval is the wait between two checks of the package databases; a
	// scan runs (and is sent) only when they changed. 0 means DefaultInterval.
	Interval time.Duration
	// Policy, when set, returns the current policy: the custom checks of
	// its first image rule matching the container run in the scan, and a
	// change of them makes the next check scan again.
	Policy func() *policy.Policy
}

// Send delivers an inventory (the launcher's socket client).
type Send func(ctx context.Context, inv api.Inventory) error

// Run inventories the container after the delay, then every interval when
// the package databases changed, until ctx ends. It runs on its own OS
// thread at the lowest CPU and idle I/O priority; failures are logged and
// retried at the next interval, never returned: the app must not notice.
func Run(ctx context.Context, s Schedule, send Send) {
	s.Options = s.Options.withDefaults()
	log := s.Logger.With("component", "inventory")
	delay, interval := s.Delay, s.Interval
	if delay == 0 {
		delay = DefaultDelay
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	if !sleep(ctx, delay) {
		return
	}
	// Every call below runs on this thread, which is never handed back to
	// the Go scheduler for other goroutines (it ends with the goroutine).
	runtime.LockOSThread()
	if err := lowerPriority(); err != nil {
		log.Info("could not lower the scan's priority; relying on the CPU budget", "err", err)
	}
	id := s.Identity
	if id.Container == "" {
		id.Container, _ = os.Hostname()
	}
	last := ""
	for {
		hash, err := PackageDBHash(s.Root)
		var custom []policy.CustomCheck
		key := hash
		if s.Policy != nil {
			var ch string
			custom, ch = customFor(s.Policy(), id)
			key = hash + "|" + ch
		}
		opts := s.Options
		if err == nil {
			opts.Custom, err = customcheck.Compile(custom)
		}
		switch {
		case err != nil:
			log.Warn("inventory: package databases or custom checks unusable", "err", err)
		case key == last:
			log.Debug("inventory and custom checks unchanged; not scanning", "hash", hash)
		default:
			inv, err := Scan(ctx, opts)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("inventory scan failed", "err", err)
				break
			}
			inv.TaskFamily, inv.TaskID = s.Identity.TaskFamily, s.TaskID
			inv.Container, inv.Image, inv.ImageDigest = id.Container, s.Identity.Image, s.ImageDigest
			if err := send(ctx, *inv); err != nil {
				log.Warn("inventory not delivered; retrying at the next interval", "err", err)
				break
			}
			log.Info("inventory sent", "packages", len(inv.Packages), "findings", len(inv.Compliance), "files", inv.Files, "ms", inv.DurationMS)
			// The skip key is the hash the scan saw plus the custom
			// checks it ran.
			last = inv.Hash + key[len(hash):]
		}
		if !sleep(ctx, interval) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
