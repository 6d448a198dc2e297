package scan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/notify"
	"github.com/securechat/securechat/store"
)

// BreakerConfig configures the runaway-rule breaker: a rule that queues more than
// MaxDeletions deletions, or more than MaxShare of the messages scanned
// (once at least MinScanned were), within Window, is switched to monitor
// and its queued deletions are held. The window is shared by every daemon
// on the database.
type BreakerConfig struct {
	Enabled      bool
	MaxDeletions int
	MaxShare     float64
	MinScanned   int
	Window       time.Duration
}

// Breaker is the runaway-rule Breaker at work in a daemon.
type Breaker struct {
	cfg     BreakerConfig
	store   ScanCounter
	notes   notify.Notices
	metrics *metrics.Metrics
	log     zerolog.Logger
	now     func() time.Time
	id      string       // this daemon, in scan_counts
	pending atomic.Int64 // messages scanned, not yet flushed to the database
}

func NewBreaker(cfg BreakerConfig, st ScanCounter, notes notify.Notices, m *metrics.Metrics, log zerolog.Logger, now func() time.Time) *Breaker {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Breaker{cfg: cfg, store: st, notes: notes, metrics: m, log: log, now: now, id: hex.EncodeToString(b[:])}
}

// scanned counts one message scanned.
func (b *Breaker) scanned() { b.pending.Add(1) }

// Run flushes the scan counts to the database until ctx ends.
func (b *Breaker) Run(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.flush(context.WithoutCancel(ctx))
			return
		case <-t.C:
			b.flush(ctx)
		}
	}
}

func (b *Breaker) flush(ctx context.Context) {
	n := b.pending.Swap(0)
	if n == 0 {
		return
	}
	if err := b.store.AddScanned(ctx, b.id, b.now(), int(n), 2*b.cfg.Window); err != nil {
		b.pending.Add(n) // next time
		b.log.Warn().Err(err).Msg("cannot record scan counts for the breaker; retrying")
	}
}

// limits returns the breaker's limits for a recording transaction
// (store.RecordLeakWeighed), with what this daemon scanned and has not
// flushed yet.
func (b *Breaker) limits() store.Breaker {
	now := b.now()
	return store.Breaker{Window: b.cfg.Window, MaxDeletions: b.cfg.MaxDeletions, MaxShare: b.cfg.MaxShare, MinScanned: b.cfg.MinScanned,
		Unflushed: int(b.pending.Load()), Now: now,
		Reason: func(why string) string {
			return fmt.Sprintf("runaway-rule breaker: %s; switched to monitor at %s", why, now.UTC().Format(time.RFC3339))
		},
		Notes: func(f store.Finding, why string) []store.OutboxItem {
			return b.notes.Breaker(f, why, resumeHint(f.RegexID))
		},
	}
}

// resumeHint is the commands that make a tripped rule delete again.
func resumeHint(id int64) string {
	return fmt.Sprintf("securechat regex update %d --action delete, then securechat leaks resume --rule %d", id, id)
}

// tripped counts and logs the rules a recording tripped.
func (b *Breaker) tripped(trips []store.Trip) {
	for _, t := range trips {
		b.metrics.BreakerTrips.WithLabelValues(strconv.FormatInt(t.Finding.RegexID, 10)).Inc()
		b.log.Error().Int64("regex_id", t.Finding.RegexID).Str("rule", t.Finding.Rule).Str("why", t.Why).Int("held", t.Held).
			Str("resume", resumeHint(t.Finding.RegexID)).
			Msg("runaway-rule breaker: the rule is switched to monitor and its queued deletions are held")
	}
}
