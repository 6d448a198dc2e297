package bot

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/store"
)

const (
	deleteBatch  = 100
	idlePoll     = 5 * time.Second  // looks for work queued by another process
	callTimeout  = 15 * time.Second // one Web API call
	writeTimeout = 5 * time.Second  // recording one outcome
	// claimLease is how long a claimed deletion or notification belongs to
	// the daemon that claimed it: twice the worst case of its call and the
	// write of its outcome, so that no other daemon can take it while it is
	// still in flight.
	claimLease = 2 * (callTimeout + writeTimeout)
	// minRateLimitWait is the shortest wait after a 429, even with
	// Retry-After: 0, so that no loop spins against Slack.
	minRateLimitWait = time.Second
)

// messageDeleter is the part of the Slack client the deleter uses.
type messageDeleter interface {
	DeleteMessageContext(ctx context.Context, channel, ts string) (string, string, error)
}

type deleterDeps struct {
	store        *store.Store
	api          messageDeleter
	notes        notices
	wakeNotifier func()
	metrics      *Metrics
	log          zerolog.Logger
	now          func() time.Time
	retryMax     time.Duration
}

// deleter works through the durable deletion queue: it claims a due
// deletion, calls chat.delete, and records the outcome with the
// notifications it calls for, in one transaction.
type deleter struct {
	deleterDeps
	wakeCh   chan struct{}
	sampled  zerolog.Logger // for repeated warnings
	gaugedAt time.Time      // when the pending gauge was last set; run's goroutine only
}

func newDeleter(d deleterDeps) *deleter {
	return &deleter{deleterDeps: d, wakeCh: make(chan struct{}, 1),
		sampled: d.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute})}
}

// wake tells the deleter that a deletion was queued.
func (d *deleter) wake() { nudge(d.wakeCh) }

// run works through due deletions until ctx ends. It returns an error only
// when the user token stopped working: the deletions stay pending.
func (d *deleter) run(ctx context.Context) error {
	for {
		wait, err := d.deleteDue(ctx)
		if err != nil {
			if isTokenError(err) {
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

// deleteDue attempts every due deletion and returns how long to wait before
// looking again.
func (d *deleter) deleteDue(ctx context.Context) (time.Duration, error) {
	if now := d.now(); now.Sub(d.gaugedAt) > time.Second {
		d.gaugedAt = now
		if counts, err := d.store.DeletionCounts(ctx); err == nil {
			d.metrics.pending.Set(float64(counts[store.StatusPending]))
		}
	}
	due, err := d.store.DueDeletions(ctx, d.now(), deleteBatch)
	if err != nil {
		return 0, err
	}
	for _, del := range due {
		if ctx.Err() != nil {
			return 0, nil
		}
		claimed, err := d.store.ClaimDeletion(ctx, del.ID, d.now(), claimLease)
		if err != nil {
			return 0, err
		}
		if !claimed {
			continue // another daemon on this database has it
		}
		pause, err := d.deleteOne(ctx, del)
		if errors.Is(err, store.ErrNotFound) {
			// Cancelled or held while its call was in flight: the new
			// status stands.
			d.log.Info().Str("channel", del.Channel).Str("ts", del.TS).Msg("deletion was cancelled or held while its call was in flight; left as it is")
			continue
		}
		if err != nil {
			return 0, err
		}
		if pause > 0 {
			return pause, nil
		}
	}
	if len(due) == deleteBatch {
		return 0, nil
	}
	next, ok, err := d.store.NextDeletionAt(ctx)
	if err != nil {
		return 0, err
	}
	if !ok {
		return idlePoll, nil
	}
	return min(max(next.Sub(d.now()), 0), idlePoll), nil
}

// findings reads what was found in a message whose deletion ended, for the
// notifications. Without notifications configured it reads nothing.
func (d *deleter) findings(ctx context.Context, del store.Deletion) (store.Message, []store.Finding) {
	if !d.notes.any() {
		return store.Message{Channel: del.Channel, TS: del.TS}, nil
	}
	ls, err := d.store.Leaks(ctx, store.LeakFilter{DeletionID: del.ID})
	if err != nil || len(ls) == 0 {
		d.log.Warn().Err(err).Int64("deletion", del.ID).Msg("cannot read the leaks of a deletion; notifications skipped")
		return store.Message{Channel: del.Channel, TS: del.TS}, nil
	}
	return findingsOf(ls)
}

// deleteOne makes one chat.delete attempt and records its outcome. It
// returns a pause when Slack rate-limited the method.
func (d *deleter) deleteOne(ctx context.Context, del store.Deletion) (time.Duration, error) {
	// A call in flight finishes even during shutdown, so its outcome is
	// recorded rather than left unknown.
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	_, _, err := d.api.DeleteMessageContext(callCtx, del.Channel, del.TS)
	cancel()
	out := classifyDelete(err, del.Attempts)
	if err != nil {
		d.metrics.slackErrors.WithLabelValues("chat.delete", errCode(err)).Inc()
	}
	now := d.now()
	// Record with a context that outlives shutdown by a little: an outcome
	// lost here would mean one more chat.delete at the next start.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer scancel()
	ev := d.log.With().Str("channel", del.Channel).Str("ts", del.TS).Int("attempt", del.Attempts+1).Logger()
	switch out.kind {
	case outDone:
		msg, fs := d.findings(sctx, del)
		notes := append(d.notes.author(msg, fs), d.notes.outcome(msg, fs, store.ActionDelete, "deleted", "")...)
		if err := d.store.MarkDeleted(sctx, del.ID, notes...); err != nil {
			return 0, err
		}
		d.metrics.deletions.WithLabelValues("deleted").Inc()
		if len(notes) > 0 {
			d.wakeNotifier()
		}
		e := ev.Info().Dur("after", now.Sub(del.CreatedAt))
		if out.reason != "" {
			e = e.Str("note", out.reason)
		}
		e.Msg("message deleted")
	case outRateLimited:
		out.wait = max(out.wait, minRateLimitWait)
		if err := d.store.DeferDeletion(sctx, del.ID, now.Add(out.wait)); err != nil {
			return 0, err
		}
		d.metrics.deletions.WithLabelValues("rate_limited").Inc()
		d.sampled.Warn().Str("channel", del.Channel).Str("ts", del.TS).Dur("retry_in", out.wait).Msg("chat.delete rate limited by Slack; waiting as told")
		return out.wait, nil
	case outRetry:
		wait := backoff(del.Attempts+1, d.retryMax)
		if err := d.store.RetryDeletion(sctx, del.ID, out.reason, now.Add(wait)); err != nil {
			return 0, err
		}
		d.metrics.deletions.WithLabelValues("retry").Inc()
		d.sampled.Warn().Str("channel", del.Channel).Str("ts", del.TS).Int("attempt", del.Attempts+1).
			Str("reason", out.reason).Dur("retry_in", wait).Msg("chat.delete failed; will retry")
	case outFailed:
		msg, fs := d.findings(sctx, del)
		notes := d.notes.outcome(msg, fs, store.ActionDelete, "could not be deleted", out.reason)
		if err := d.store.FailDeletion(sctx, del.ID, out.reason, notes...); err != nil {
			return 0, err
		}
		d.metrics.deletions.WithLabelValues("failed").Inc()
		if len(notes) > 0 {
			d.wakeNotifier()
		}
		ev.Error().Str("reason", out.reason).Str("hint", failHint(out.reason)).Msg("message could not be deleted")
	case outFatal:
		return 0, &TokenError{Env: "SLACK_USER_TOKEN", Code: out.reason,
			Hint: "chat.delete refused the token while running; pending deletions are kept and resume when securechat starts with a working token: " + userTokenHint}
	}
	return 0, nil
}
