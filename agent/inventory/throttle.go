package inventory

import (
	"context"
	"time"
)

// throttle keeps a loop under a share of one CPU: after every slice of work
// it sleeps long enough that work/(work+sleep) stays at the budget. Time the
// scan spends descheduled counts as work, so a busy app slows it further.
type throttle struct {
	budget float64
	start  time.Time
	n      int
}

// slice is how much work runs between two sleeps.
const slice = 2 * time.Millisecond

func newThrottle(budget float64) *throttle {
	return &throttle{budget: budget, start: time.Now()}
}

// tick is called once per unit of work; it sleeps when the slice is used up
// and returns the context's error when it ends.
func (t *throttle) tick(ctx context.Context) error {
	t.n++
	if t.budget >= 1 || t.n%16 != 0 {
		return nil
	}
	worked := time.Since(t.start)
	if worked < slice {
		return nil
	}
	pause := time.Duration(float64(worked) * (1 - t.budget) / t.budget)
	tm := time.NewTimer(pause)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
	}
	t.start = time.Now()
	return nil
}
