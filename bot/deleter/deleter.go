// Package deleter works through the durable deletion queue: it claims due
// deletions with a token, calls chat.delete, and records the fenced
// outcomes with the notices they call for, in one transaction.
package deleter

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot/internal/wait"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/notify"
	"github.com/securechat/securechat/bot/slackapi"
	"github.com/securechat/securechat/store"
)

const (
	deleteBatch = 100 // due deletions read at once
	// deleteConcurrency is how many chat.delete calls one round makes at
	// once, with one commit for their claims and one for their outcomes.
	// A round's claims outlast it: its calls run side by side, so the
	// lease still covers one call and one write.
	deleteConcurrency = 8
)

// MessageDeleter is the part of the Slack client the deleter uses.
type MessageDeleter interface {
	DeleteMessageContext(ctx context.Context, channel, ts string) (string, string, error)
}

// Queue is the deleter's view: due deletions, fenced claims and
// outcomes, and the findings a notice is built from.
type Queue interface {
	DueDeletions(ctx context.Context, now time.Time, limit int) ([]store.Deletion, error)
	NextDeletionAt(ctx context.Context) (time.Time, bool, error)
	ClaimDeletions(ctx context.Context, ids []int64, now time.Time, lease time.Duration) ([]store.Claim, error)
	RecordOutcomes(ctx context.Context, outcomes []store.Outcome) ([]error, error)
	DeletionCounts(ctx context.Context) (map[string]int, error)
	ShiftDueTimes(ctx context.Context, by time.Duration, now time.Time) (int, error)
	Leaks(ctx context.Context, f store.LeakFilter) ([]store.Leak, error)
}

// Deps are what a Deleter needs.
type Deps struct {
	Store        Queue
	API          MessageDeleter
	Notes        notify.Notices
	WakeNotifier func()
	Metrics      *metrics.Metrics
	Log          zerolog.Logger
	Now          func() time.Time
	RetryMax     time.Duration
}

// Deleter works through the durable deletion queue: it claims a due
// deletion, calls chat.delete, and records the outcome with the
// notifications it calls for, in one transaction.
type Deleter struct {
	Deps
	wakeCh   chan struct{}
	sampled  zerolog.Logger // for repeated warnings
	gaugedAt time.Time      // when the pending gauge was last set; run's goroutine only
	// resumeAt is when a 429's Retry-After has passed: no chat.delete is
	// called before it, however many deletions are queued (and wake the
	// deleter) meanwhile. run's goroutine only.
	resumeAt time.Time
	// clock watches for the wall clock stepping back; clockDebt is a step
	// not applied to the due times yet.
	clock     clockWatch
	clockDebt time.Duration
}

// clockWatch notices the wall clock stepping back, by comparing it with
// the monotonic clock between two looks.
type clockWatch struct {
	wall time.Time // the wall clock at the last look (the deleter's clock)
	mono time.Time // time.Now then, for its monotonic reading
}

// minClockStep is the smallest step back that is acted on (smaller ones
// are scheduling noise).
const minClockStep = time.Second

// stepBack returns how far the wall clock stepped back since the last
// look (0 when it did not), given the wall clock now.
func (c *clockWatch) stepBack(wall time.Time) time.Duration {
	mono := time.Now()
	defer func() { c.wall, c.mono = wall, mono }()
	if c.wall.IsZero() {
		return 0
	}
	// Round(0) drops Go's monotonic reading, so that Sub compares wall times.
	if step := mono.Sub(c.mono) - wall.Round(0).Sub(c.wall.Round(0)); step >= minClockStep {
		return step
	}
	return 0
}

func New(d Deps) *Deleter {
	return &Deleter{Deps: d, wakeCh: make(chan struct{}, 1),
		sampled: d.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute})}
}

// Wake tells the deleter that a deletion was queued.
func (d *Deleter) Wake() { wait.Nudge(d.wakeCh) }

// Run works through due deletions until ctx ends. It returns an error only
// when the user token stopped working: the deletions stay pending.
func (d *Deleter) Run(ctx context.Context) error {
	for {
		// A wake-up during Slack's Retry-After does not end it.
		if pause := time.Until(d.resumeAt); pause > 0 {
			if wait.Sleep(ctx, pause) != nil {
				return nil
			}
		}
		wait, err := d.deleteDue(ctx)
		if err != nil {
			if slackapi.IsTokenError(err) {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			d.sampled.Warn().Err(err).Msg("deleter cannot read or update the database; retrying")
			wait = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-d.wakeCh:
			t.Stop()
		case <-t.C:
		}
	}
}

// deleteDue attempts the due deletions, a round at a time, and returns how
// long to wait before looking again.
func (d *Deleter) deleteDue(ctx context.Context) (time.Duration, error) {
	// Due times are wall-clock times in the database: after a step back of
	// the clock, those written before it are moved back by the step (for
	// the notifier's queue too), rather than waiting it out.
	now := d.Now()
	d.clockDebt += d.clock.stepBack(now)
	if d.clockDebt > 0 {
		n, err := d.Store.ShiftDueTimes(ctx, d.clockDebt, now)
		if err != nil {
			return 0, err // moved at the next look
		}
		d.Log.Warn().Dur("step", d.clockDebt).Int("moved", n).Msg("the system clock stepped back; queued deletions and notifications were moved back by the step")
		d.clockDebt = 0
	}
	if now.Sub(d.gaugedAt) > time.Second {
		d.gaugedAt = now
		if counts, err := d.Store.DeletionCounts(ctx); err == nil {
			d.Metrics.Pending.Set(float64(counts[store.StatusPending]))
		}
	}
	due, err := d.Store.DueDeletions(ctx, d.Now(), deleteBatch)
	if err != nil {
		return 0, err
	}
	for len(due) > 0 {
		if ctx.Err() != nil {
			return 0, nil
		}
		n := min(len(due), deleteConcurrency)
		pause, err := d.round(ctx, due[:n])
		if pause > 0 {
			d.resumeAt = time.Now().Add(pause) // monotonic: a clock step does not move it
		}
		if err != nil || pause > 0 {
			return pause, err
		}
		due = due[n:]
	}
	next, ok, err := d.Store.NextDeletionAt(ctx)
	if err != nil {
		return 0, err
	}
	if !ok {
		return slackapi.IdlePoll, nil
	}
	return min(max(next.Sub(d.Now()), 0), slackapi.IdlePoll), nil
}

// attempt is one chat.delete call of a round.
type attempt struct {
	del    store.Deletion
	token  string // the claim's, fencing the outcome
	called bool   // the call was made (else it is deferred, the attempt taken back)
	err    error  // the call's result
}

// round makes one attempt at each of dels (at most deleteConcurrency) with
// two commits in all, however many there are: the claims in one transaction
// (durable before any call), then the calls at once, then every outcome
// with its notifications in one transaction. It returns a pause when Slack
// rate-limited the method, and a *TokenError when the token stopped
// working (after recording the other outcomes).
func (d *Deleter) round(ctx context.Context, dels []store.Deletion) (time.Duration, error) {
	ids := make([]int64, len(dels))
	for i, del := range dels {
		ids[i] = del.ID
	}
	claims, err := d.Store.ClaimDeletions(ctx, ids, d.Now(), slackapi.ClaimLease)
	if err != nil {
		return 0, err
	}
	// What is not claimed another daemon on this database has, or it was
	// cancelled. The attempts are the claim's, not those of the earlier
	// read: another daemon may have made one since.
	byID := make(map[int64]store.Claim, len(claims))
	for _, c := range claims {
		byID[c.ID] = c
	}
	var atts []attempt
	for _, del := range dels {
		if c, ok := byID[del.ID]; ok {
			del.Attempts = c.Attempts
			atts = append(atts, attempt{del: del, token: c.Token})
		}
	}
	d.call(ctx, atts)

	// Record with a context that outlives shutdown by a little: an outcome
	// lost here would mean one more chat.delete at the next start.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slackapi.WriteTimeout)
	defer cancel()
	now := d.Now()
	var pause time.Duration
	var fatal error
	outs := make([]store.Outcome, len(atts))
	kinds := make([]slackapi.Outcome, len(atts))
	for i, a := range atts {
		o := store.Outcome{ID: a.del.ID, Token: a.token}
		out := slackapi.Outcome{Kind: slackapi.OutRateLimited}
		if a.called {
			out = slackapi.ClassifyDelete(a.err, a.del.Attempts)
			if a.err != nil {
				d.Metrics.SlackErrors.WithLabelValues("chat.delete", slackapi.ErrCode(a.err)).Inc()
			}
		}
		switch out.Kind {
		case slackapi.OutDone:
			o.Status = store.StatusDeleted
			msg, fs := d.findings(wctx, a.del)
			o.Notes = append(d.Notes.Author(msg, fs), d.Notes.Outcome(msg, fs, store.ActionDelete, "deleted", "")...)
		case slackapi.OutRateLimited:
			// Refused as a whole, or not called after a 429 in this round
			// (or at shutdown): nothing was deleted, so the attempt is
			// taken back.
			if a.called {
				pause = max(pause, out.Wait, slackapi.MinRateLimitWait)
			}
			o.Status, o.Deferred = store.StatusPending, true
		case slackapi.OutRetry:
			o.Status, o.Reason, o.Next = store.StatusPending, out.Reason, now.Add(slackapi.Backoff(a.del.Attempts+1, d.RetryMax))
		case slackapi.OutFailed:
			o.Status, o.Reason = store.StatusFailed, out.Reason
			msg, fs := d.findings(wctx, a.del)
			o.Notes = d.Notes.Outcome(msg, fs, store.ActionDelete, "could not be deleted", out.Reason)
		case slackapi.OutFatal:
			// The token was refused: nothing was deleted; the deletion
			// waits for a daemon with a working token.
			o.Status, o.Deferred = store.StatusPending, true
			fatal = &slackapi.TokenError{Env: "SLACK_USER_TOKEN", Code: out.Reason,
				Hint: "chat.delete refused the token while running; pending deletions are kept and resume when securechat starts with a working token: " + slackapi.UserTokenHint}
		}
		outs[i], kinds[i] = o, out
	}
	for i := range outs {
		if outs[i].Deferred {
			outs[i].Next = now.Add(pause)
		}
	}
	// Written again when the write itself failed (a database connection
	// lost, a failover): otherwise the round waits out its lease before
	// its calls are made again, and its notices with it. Writing it again
	// is safe: an outcome applies only to a deletion still pending with
	// this claim's token, and its notices are queued with it or not at all.
	var errs []error
	for try := 1; ; try++ {
		if errs, err = d.Store.RecordOutcomes(wctx, outs); err == nil {
			break
		}
		if wait.Sleep(wctx, time.Duration(try)*100*time.Millisecond) != nil {
			return 0, err
		}
		d.sampled.Warn().Err(err).Msg("could not record a round's outcomes; writing them again")
	}
	notified := false
	for i, a := range atts {
		out := kinds[i]
		ev := d.Log.With().Str("channel", a.del.Channel).Str("ts", a.del.TS).Int("attempt", a.del.Attempts+1).Logger()
		if errors.Is(errs[i], store.ErrClaimLost) {
			// Paused past the lease (a stopped process, a long GC, a
			// partition): another daemon claimed it since, and its
			// attempt's outcome is the one that counts.
			ev.Warn().Msg("another daemon claimed this deletion after this attempt's lease ran out; its outcome stands")
			continue
		}
		if errors.Is(errs[i], store.ErrNotFound) {
			// Cancelled or held while its call was in flight: the new
			// status stands.
			ev.Info().Msg("deletion was cancelled or held while its call was in flight; left as it is")
			continue
		}
		notified = notified || len(outs[i].Notes) > 0
		switch {
		case out.Kind == slackapi.OutDone:
			d.Metrics.Deletions.WithLabelValues("deleted").Inc()
			e := ev.Info().Dur("after", now.Sub(a.del.CreatedAt))
			if out.Reason != "" {
				e = e.Str("note", out.Reason)
			}
			e.Msg("message deleted")
		case out.Kind == slackapi.OutRateLimited && a.called:
			d.Metrics.Deletions.WithLabelValues("rate_limited").Inc()
			d.sampled.Warn().Str("channel", a.del.Channel).Str("ts", a.del.TS).Dur("retry_in", pause).Msg("chat.delete rate limited by Slack; waiting as told")
		case out.Kind == slackapi.OutRetry:
			d.Metrics.Deletions.WithLabelValues("retry").Inc()
			d.sampled.Warn().Str("channel", a.del.Channel).Str("ts", a.del.TS).Int("attempt", a.del.Attempts+1).
				Str("reason", out.Reason).Dur("retry_in", outs[i].Next.Sub(now)).Msg("chat.delete failed; will retry")
		case out.Kind == slackapi.OutFailed:
			d.Metrics.Deletions.WithLabelValues("failed").Inc()
			ev.Error().Str("reason", out.Reason).Str("hint", slackapi.FailHint(out.Reason)).Msg("message could not be deleted")
		}
	}
	if notified {
		d.WakeNotifier()
	}
	if fatal != nil {
		return 0, fatal
	}
	return pause, nil
}

// call makes the round's chat.delete calls at once. After a 429 or a
// refused token, or once ctx ends, it starts no more: those attempts stay
// not called. A call in flight finishes even during shutdown, so that its
// outcome is recorded rather than left unknown.
func (d *Deleter) call(ctx context.Context, atts []attempt) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := range atts {
		if stop.Load() || ctx.Err() != nil {
			break
		}
		atts[i].called = true
		wg.Go(func() {
			callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slackapi.CallTimeout)
			defer cancel()
			_, _, err := d.API.DeleteMessageContext(callCtx, atts[i].del.Channel, atts[i].del.TS)
			atts[i].err = err
			if k := slackapi.ClassifyDelete(err, atts[i].del.Attempts).Kind; k == slackapi.OutRateLimited || k == slackapi.OutFatal {
				stop.Store(true)
			}
		})
	}
	wg.Wait()
}

// findings reads what was found in a message whose deletion ended, for the
// notifications. Without notifications configured it reads nothing.
func (d *Deleter) findings(ctx context.Context, del store.Deletion) (store.Message, []store.Finding) {
	if !d.Notes.Any() {
		return store.Message{Channel: del.Channel, TS: del.TS}, nil
	}
	// Read again when the read itself fails (a database connection lost):
	// without the findings the author and the admins would not be told.
	var ls []store.Leak
	var err error
	for try := 1; ; try++ {
		if ls, err = d.Store.Leaks(ctx, store.LeakFilter{DeletionID: del.ID}); err == nil {
			break
		}
		if wait.Sleep(ctx, time.Duration(try)*100*time.Millisecond) != nil {
			break
		}
	}
	if err != nil || len(ls) == 0 {
		d.Log.Warn().Err(err).Int64("deletion", del.ID).Msg("cannot read the leaks of a deletion; notifications skipped")
		return store.Message{Channel: del.Channel, TS: del.TS}, nil
	}
	return notify.FindingsOf(ls)
}
