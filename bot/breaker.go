package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/store"
)

// Breaker configures the runaway-rule breaker: a rule that queues more than
// MaxDeletions deletions, or more than MaxShare of the messages scanned
// (once at least MinScanned were), within Window, is switched to monitor
// and its queued deletions are held. The window is shared by every daemon
// on the database.
type Breaker struct {
	Enabled      bool
	MaxDeletions int
	MaxShare     float64
	MinScanned   int
	Window       time.Duration
}

// breaker is the runaway-rule breaker at work in a daemon.
type breaker struct {
	cfg     Breaker
	store   *store.Store
	notes   notices
	metrics *Metrics
	log     zerolog.Logger
	now     func() time.Time
	id      string       // this daemon, in scan_counts
	pending atomic.Int64 // messages scanned, not yet flushed to the database
	// mu makes weighing a deletion and recording it one step among this
	// daemon's workers (the pipeline holds it across both).
	mu sync.Mutex
}

func newBreaker(cfg Breaker, st *store.Store, notes notices, m *Metrics, log zerolog.Logger, now func() time.Time) *breaker {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &breaker{cfg: cfg, store: st, notes: notes, metrics: m, log: log, now: now, id: hex.EncodeToString(b[:])}
}

// scanned counts one message scanned.
func (b *breaker) scanned() { b.pending.Add(1) }

// run flushes the scan counts to the database until ctx ends.
func (b *breaker) run(ctx context.Context) {
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

func (b *breaker) flush(ctx context.Context) {
	n := b.pending.Swap(0)
	if n == 0 {
		return
	}
	if err := b.store.AddScanned(ctx, b.id, b.now(), int(n), 2*b.cfg.Window); err != nil {
		b.pending.Add(n) // next time
		b.log.Warn().Err(err).Msg("cannot record scan counts for the breaker; retrying")
	}
}

// admit applies the breaker to a message about to be recorded: for each rule
// whose delete finding would queue the message's deletion, it counts the
// window's deletions of that rule with this one; a rule over the limits is
// tripped (switched to monitor, its queued deletions held, everyone told),
// and its findings here become monitor. It returns the verdict to record.
func (b *breaker) admit(ctx context.Context, msg store.Message, v ruleset.Verdict) ruleset.Verdict {
	since := b.now().Add(-b.cfg.Window)
	checked := map[int64]bool{}
	for i, f := range v.Findings {
		if f.Action != store.ActionDelete {
			continue
		}
		tripped, seen := checked[f.RegexID]
		if !seen {
			tripped = b.check(ctx, f, since)
			checked[f.RegexID] = tripped
		}
		if tripped {
			v.Findings[i].Action = store.ActionMonitor
		}
	}
	v.Delete = false
	for _, f := range v.Findings {
		v.Delete = v.Delete || f.Action == store.ActionDelete
	}
	return v
}

// check trips the breaker for f's rule when one more deletion would take it
// past the limits, and reports whether the rule must not delete.
func (b *breaker) check(ctx context.Context, f store.Finding, since time.Time) bool {
	load, err := b.store.RuleLoad(ctx, f.RegexID, since)
	if err != nil {
		b.log.Warn().Err(err).Int64("regex_id", f.RegexID).Msg("cannot weigh a rule for the breaker; letting it delete")
		return false
	}
	deletions := load.Deletions + 1
	scanned := load.Scanned + int(b.pending.Load())
	var why string
	switch {
	case deletions > b.cfg.MaxDeletions:
		why = fmt.Sprintf("%d deletions in %s (the limit is %d)", deletions, b.cfg.Window, b.cfg.MaxDeletions)
	case scanned >= b.cfg.MinScanned && float64(deletions) > b.cfg.MaxShare*float64(scanned):
		why = fmt.Sprintf("%d deletions for %d messages scanned in %s: %.1f%% (the limit is %.1f%%)",
			deletions, scanned, b.cfg.Window, 100*float64(deletions)/float64(scanned), 100*b.cfg.MaxShare)
	default:
		return false
	}
	resume := fmt.Sprintf("securechat regex update %d --action delete, then securechat leaks resume --rule %d", f.RegexID, f.RegexID)
	reason := fmt.Sprintf("runaway-rule breaker: %s; switched to monitor at %s", why, b.now().UTC().Format(time.RFC3339))
	tripped, held, err := b.store.TripRule(ctx, f.RegexID, reason, b.notes.breaker(f, why, resume)...)
	if err != nil {
		b.log.Error().Err(err).Int64("regex_id", f.RegexID).Msg("cannot trip the breaker; this deletion is recorded as monitor")
		return true
	}
	if tripped {
		b.metrics.breakerTrips.WithLabelValues(strconv.FormatInt(f.RegexID, 10)).Inc()
		b.log.Error().Int64("regex_id", f.RegexID).Str("rule", f.Rule).Str("why", why).Int("held", held).Str("resume", resume).
			Msg("runaway-rule breaker: the rule is switched to monitor and its queued deletions are held")
	}
	return true
}

// breaker builds the alert and webhook event of a tripped rule.
func (n notices) breaker(f store.Finding, why, resume string) []store.OutboxItem {
	var out []store.OutboxItem
	if n.cfg.AlertChannel != "" {
		text := fmt.Sprintf(":octagonal_sign: securechat: the runaway-rule breaker switched regex %d (%s) to monitor: %s. Its queued deletions are held. Resume with: %s.",
			f.RegexID, escape(detect.Shorten(f.Rule, 80)), why, resume)
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: marshal(notice{Channel: n.cfg.AlertChannel, Text: text})})
	}
	if n.cfg.WebhookURL != "" {
		now := n.now().UTC()
		body := map[string]any{"id": fmt.Sprintf("breaker:%d:%d", f.RegexID, now.UnixMilli()), "event": "breaker",
			"regex_id": f.RegexID, "rule": f.Rule, "reason": why, "resume": resume, "time": now}
		b, _ := json.Marshal(body)
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: marshal(notice{Body: json.RawMessage(b)})})
	}
	return out
}
