// Package wait holds the two small waiting helpers the daemon's workers
// share.
package wait

import (
	"context"
	"time"
)

// Nudge wakes a worker waiting on ch without blocking: one pending wake-up
// is enough.
func Nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Sleep waits d, or until ctx ends (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
