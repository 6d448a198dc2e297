package bot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/securechat/securechat/store"
)

const (
	deleteBatch     = 100
	idlePoll        = 5 * time.Second  // looks for deletions queued by another process
	callTimeout     = 15 * time.Second // one chat.delete call
	maxUnknownTries = 10               // attempts for answers we do not recognise
)

// terminalCodes are chat.delete answers that retrying cannot change.
var terminalCodes = []string{
	"message_not_found", "cant_delete_message", "channel_not_found", "compliance_exports_prevent_deletion",
	"not_in_channel", "is_archived", "restricted_action", "invalid_arguments", "invalid_ts",
}

// transientCodes are chat.delete answers worth retrying.
var transientCodes = []string{"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}

type outcomeKind int

const (
	outDone outcomeKind = iota
	outRetry
	outRateLimited
	outFailed
	outFatal
)

type outcome struct {
	kind   outcomeKind
	reason string
	wait   time.Duration // outRateLimited
}

// classifySlack says what a Web API error means whatever the method: rate
// limited, worth retrying (5xx, network, a transient Slack error), a token
// that stopped working, or a Slack answer that retrying will not change.
func classifySlack(err error) outcome {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return outcome{kind: outRateLimited, wait: rl.RetryAfter, reason: "rate limited"}
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch {
		case slices.Contains(tokenCodes, se.Err):
			return outcome{kind: outFatal, reason: se.Err}
		case slices.Contains(transientCodes, se.Err):
			return outcome{kind: outRetry, reason: se.Err}
		}
		return outcome{kind: outFailed, reason: se.Err}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		if sc.Code == http.StatusTooManyRequests {
			return outcome{kind: outRateLimited, wait: time.Minute, reason: "rate limited (no Retry-After)"}
		}
		return outcome{kind: outRetry, reason: fmt.Sprintf("HTTP %d", sc.Code)}
	}
	return outcome{kind: outRetry, reason: err.Error()}
}

// classifyDelete decides what a chat.delete result means for a deletion that
// had made `attempts` attempts before this one. On top of classifySlack: a
// message_not_found after an attempt whose outcome was unknown counts as
// deleted, and a Slack error chat.delete is not known to give is retried a
// few times before it is taken as final.
func classifyDelete(err error, attempts int) outcome {
	if err == nil {
		return outcome{kind: outDone}
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		known := slices.Contains(terminalCodes, se.Err) || slices.Contains(tokenCodes, se.Err) || slices.Contains(transientCodes, se.Err)
		switch {
		case se.Err == "message_not_found" && attempts > 0:
			// An earlier attempt ended without an answer (timeout, 5xx,
			// network): it most likely deleted the message.
			return outcome{kind: outDone, reason: "message_not_found after an earlier attempt whose outcome was unknown"}
		case !known && attempts+1 < maxUnknownTries:
			return outcome{kind: outRetry, reason: se.Err}
		case !known:
			return outcome{kind: outFailed, reason: fmt.Sprintf("%s (gave up after %d attempts)", se.Err, attempts+1)}
		}
	}
	return classifySlack(err)
}

// backoff is the wait before attempt n+1 after n failed attempts: 1s, 2s,
// 4s… capped at max, with ±20% jitter so retries do not march in step.
func backoff(n int, maxWait time.Duration) time.Duration {
	d := time.Second << min(n-1, 20)
	d = min(d, maxWait)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// runDeleter works through due deletions until ctx ends. It returns an error
// only when the user token stopped working: the deletions stay pending.
func (d *Daemon) runDeleter(ctx context.Context) error {
	log := d.log.With().Str("component", "deleter").Logger()
	sampled := log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute})
	for {
		wait, err := d.deleteDue(ctx, log, sampled)
		if err != nil {
			if isTokenError(err) {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			sampled.Warn().Err(err).Msg("deleter cannot read or update the database; retrying")
			wait = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-d.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// deletionFindings reads what was found in a message whose deletion ended,
// for the notifications. Without notifications configured it reads nothing.
func (d *Daemon) deletionFindings(ctx context.Context, del store.Deletion) (store.Message, []store.Finding) {
	n := d.opts.Notify
	if n.Author == "" && n.AlertChannel == "" && n.WebhookURL == "" {
		return store.Message{Channel: del.Channel, TS: del.TS}, nil
	}
	ls, err := d.store.Leaks(ctx, store.LeakFilter{DeletionID: del.ID})
	if err != nil || len(ls) == 0 {
		d.log.Warn().Err(err).Int64("deletion", del.ID).Msg("cannot read the leaks of a deletion; notifications skipped")
		return store.Message{Channel: del.Channel, TS: del.TS}, nil
	}
	return findingsOf(ls)
}

// deleteDue attempts every due deletion and returns how long to wait before
// looking again.
func (d *Daemon) deleteDue(ctx context.Context, log, sampled zerolog.Logger) (time.Duration, error) {
	if now := time.Now(); now.Sub(d.gaugedAt) > time.Second {
		d.gaugedAt = now // the deleter is the only goroutine that touches it
		if counts, err := d.store.DeletionCounts(ctx); err == nil {
			d.metrics.pending.Set(float64(counts[store.StatusPending]))
		}
	}
	due, err := d.store.DueDeletions(ctx, d.opts.Now(), deleteBatch)
	if err != nil {
		return 0, err
	}
	for _, del := range due {
		if ctx.Err() != nil {
			return 0, nil
		}
		claimed, err := d.store.ClaimDeletion(ctx, del.ID, d.opts.Now(), callTimeout+5*time.Second)
		if err != nil {
			return 0, err
		}
		if !claimed {
			continue // another daemon on this database has it
		}
		pause, err := d.deleteOne(ctx, del, log, sampled)
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
	return min(max(next.Sub(d.opts.Now()), 0), idlePoll), nil
}

// deleteOne makes one chat.delete attempt and records its outcome. It
// returns a pause when Slack rate-limited the method.
func (d *Daemon) deleteOne(ctx context.Context, del store.Deletion, log, sampled zerolog.Logger) (time.Duration, error) {
	// A call in flight finishes even during shutdown, so its outcome is
	// recorded rather than left unknown.
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	_, _, err := d.api.DeleteMessageContext(callCtx, del.Channel, del.TS)
	cancel()
	out := classifyDelete(err, del.Attempts)
	if err != nil {
		d.metrics.slackErrors.WithLabelValues("chat.delete", errCode(err)).Inc()
	}
	now := d.opts.Now()
	// Record with a context that outlives shutdown by a little: an outcome
	// lost here would mean one more chat.delete at the next start.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	ev := log.With().Str("channel", del.Channel).Str("ts", del.TS).Int("attempt", del.Attempts+1).Logger()
	switch out.kind {
	case outDone:
		msg, fs := d.deletionFindings(sctx, del)
		notes := append(d.authorNote(msg, fs), d.outcomeNotes(msg, fs, store.ActionDelete, "deleted", "")...)
		if err := d.store.MarkDeleted(sctx, del.ID, notes...); err != nil {
			return 0, err
		}
		d.metrics.deletions.WithLabelValues("deleted").Inc()
		if len(notes) > 0 {
			nudge(d.notifyWake)
		}
		e := ev.Info().Dur("after", now.Sub(del.CreatedAt))
		if out.reason != "" {
			e = e.Str("note", out.reason)
		}
		e.Msg("message deleted")
	case outRateLimited:
		if err := d.store.DeferDeletion(sctx, del.ID, now.Add(out.wait)); err != nil {
			return 0, err
		}
		d.metrics.deletions.WithLabelValues("rate_limited").Inc()
		sampled.Warn().Str("channel", del.Channel).Str("ts", del.TS).Dur("retry_in", out.wait).Msg("chat.delete rate limited by Slack; waiting as told")
		return out.wait, nil
	case outRetry:
		wait := backoff(del.Attempts+1, d.opts.RetryMax)
		if err := d.store.RetryDeletion(sctx, del.ID, out.reason, now.Add(wait)); err != nil {
			return 0, err
		}
		d.metrics.deletions.WithLabelValues("retry").Inc()
		sampled.Warn().Str("channel", del.Channel).Str("ts", del.TS).Int("attempt", del.Attempts+1).
			Str("reason", out.reason).Dur("retry_in", wait).Msg("chat.delete failed; will retry")
	case outFailed:
		msg, fs := d.deletionFindings(sctx, del)
		notes := d.outcomeNotes(msg, fs, store.ActionDelete, "could not be deleted", out.reason)
		if err := d.store.FailDeletion(sctx, del.ID, out.reason, notes...); err != nil {
			return 0, err
		}
		d.metrics.deletions.WithLabelValues("failed").Inc()
		if len(notes) > 0 {
			nudge(d.notifyWake)
		}
		ev.Error().Str("reason", out.reason).Str("hint", failHint(out.reason)).Msg("message could not be deleted")
	case outFatal:
		return 0, &TokenError{Env: "SLACK_USER_TOKEN", Code: out.reason,
			Hint: "chat.delete refused the token while running; pending deletions are kept and resume when securechat starts with a working token: " + userTokenHint}
	}
	return 0, nil
}

func failHint(reason string) string {
	switch reason {
	case "cant_delete_message":
		return "the token's user may not delete this message: use an admin's or owner's token, and check the workspace's message deletion policy"
	case "channel_not_found", "not_in_channel":
		return "the token's user cannot see this conversation: add them to it"
	case "compliance_exports_prevent_deletion":
		return "the workspace's compliance exports forbid deleting messages; remove it by hand or change the policy"
	case "message_not_found":
		return "the message was already deleted, by its author or someone else"
	}
	return "see https://docs.slack.dev/reference/methods/chat.delete for this error"
}
