package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/securechat/securechat/store"
)

// outboxRetention is how long sent notifications stay in the database.
const outboxRetention = 7 * 24 * time.Hour

// notice is an outbox payload. It holds masked data only.
type notice struct {
	Channel string          `json:"channel,omitempty"` // where to post (alert channel, or the message's channel)
	User    string          `json:"user,omitempty"`    // the author, for author notices
	Mode    string          `json:"mode,omitempty"`    // author notices: ephemeral or dm
	Text    string          `json:"text,omitempty"`    // Slack text
	Body    json.RawMessage `json:"body,omitempty"`    // webhook JSON
}

// WebhookEvent is the JSON body securechat POSTs to the webhook, one per
// leaking message and outcome.
type WebhookEvent struct {
	Event    string           `json:"event"` // "leak"
	Channel  string           `json:"channel"`
	User     string           `json:"user"`
	TS       string           `json:"ts"`
	Action   string           `json:"action"`  // delete or monitor
	Outcome  string           `json:"outcome"` // deleted, delete_failed, monitored
	Reason   string           `json:"reason,omitempty"`
	Findings []WebhookFinding `json:"findings"`
	Time     time.Time        `json:"time"`
}

// WebhookFinding is one match in a WebhookEvent.
type WebhookFinding struct {
	RegexID int64  `json:"regex_id"`
	Rule    string `json:"rule"`
	Excerpt string `json:"excerpt"` // masked
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// outcomeNotes builds the admin alert and the webhook event for a leaking
// message whose outcome is known. outcome is what the alert says
// ("deleted", "could not be deleted", "recorded (monitor: not deleted)").
func (d *Daemon) outcomeNotes(msg store.Message, fs []store.Finding, action, outcome, reason string) []store.OutboxItem {
	var out []store.OutboxItem
	n := d.opts.Notify
	if n.AlertChannel != "" {
		var parts []string
		for _, f := range fs {
			parts = append(parts, fmt.Sprintf("regex %d (%s) `%s`", f.RegexID, escape(f.Rule), escape(f.Excerpt)))
		}
		text := fmt.Sprintf(":rotating_light: securechat: leak in <#%s> by <@%s> (ts %s): %s. Action: %s; %s.",
			msg.Channel, msg.User, msg.TS, strings.Join(dedupStrings(parts), ", "), action, outcome)
		if reason != "" {
			text += " Reason: " + reason + "."
		}
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: marshal(notice{Channel: n.AlertChannel, Text: text})})
	}
	if n.WebhookURL != "" {
		ev := WebhookEvent{Event: "leak", Channel: msg.Channel, User: msg.User, TS: msg.TS, Action: action,
			Outcome: webhookOutcome(action, reason, outcome), Reason: reason, Time: d.opts.Now().UTC()}
		for _, f := range fs {
			ev.Findings = append(ev.Findings, WebhookFinding{RegexID: f.RegexID, Rule: f.Rule, Excerpt: f.Excerpt})
		}
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: marshal(notice{Body: json.RawMessage(marshal(ev))})})
	}
	return out
}

func webhookOutcome(action, reason, outcome string) string {
	switch {
	case action == store.ActionMonitor:
		return "monitored"
	case reason != "" && outcome != "deleted":
		return "delete_failed"
	}
	return "deleted"
}

// authorNote builds the notice to the member whose message was deleted.
func (d *Daemon) authorNote(msg store.Message, fs []store.Finding) []store.OutboxItem {
	n := d.opts.Notify
	if n.Author == "" || msg.User == "" || len(fs) == 0 {
		return nil
	}
	var rules []string
	for _, f := range fs {
		rules = append(rules, f.Rule)
	}
	rule := strings.Join(dedupStrings(rules), ", ")
	if rule == "" {
		rule = "regex " + strconv.FormatInt(fs[0].RegexID, 10)
	}
	text := strings.NewReplacer("{rule}", escape(rule), "{excerpt}", escape(fs[0].Excerpt), "{channel}", msg.Channel, "{user}", msg.User).
		Replace(n.AuthorMessage)
	return []store.OutboxItem{{Kind: store.KindAuthor, Payload: marshal(notice{Channel: msg.Channel, User: msg.User, Mode: n.Author, Text: text})}}
}

func dedupStrings(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// findingsOf turns the leaks of one deletion back into findings for notes.
func findingsOf(ls []store.Leak) (store.Message, []store.Finding) {
	var msg store.Message
	var fs []store.Finding
	for _, l := range ls {
		msg = store.Message{Channel: l.Channel, User: l.User, TS: l.TS}
		fs = append(fs, store.Finding{RegexID: l.RegexID, Rule: l.Rule, Excerpt: l.Excerpt, Action: l.Action})
	}
	return msg, fs
}

// runNotifier sends queued notifications until ctx ends. A notification
// that fails is retried with backoff, up to maxUnknownTries attempts, and
// never holds up detection or deletion.
func (d *Daemon) runNotifier(ctx context.Context) {
	log := d.log.With().Str("component", "notifier").Logger()
	sampled := log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute})
	var pruned time.Time
	for {
		if now := d.opts.Now(); now.Sub(pruned) > time.Hour {
			pruned = now
			if n, err := d.store.PruneOutbox(ctx, now.Add(-outboxRetention)); err != nil {
				sampled.Warn().Err(err).Msg("cannot prune sent notifications")
			} else if n > 0 {
				log.Debug().Int64("pruned", n).Msg("pruned sent notifications")
			}
		}
		wait := d.notifyDue(ctx, log, sampled)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.notifyWake:
			t.Stop()
		case <-t.C:
		}
	}
}

func (d *Daemon) notifyDue(ctx context.Context, log, sampled zerolog.Logger) time.Duration {
	due, err := d.store.DueOutbox(ctx, d.opts.Now(), deleteBatch)
	if err != nil {
		if ctx.Err() == nil {
			sampled.Warn().Err(err).Msg("notifier cannot read the outbox; retrying")
		}
		return time.Second
	}
	for _, it := range due {
		if ctx.Err() != nil {
			return 0
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
		out := d.send(sctx, it)
		cancel()
		now := d.opts.Now()
		status, next := store.OutboxSent, now
		switch out.kind {
		case outRetry, outRateLimited:
			status = store.OutboxPending
			next = now.Add(max(out.wait, backoff(it.Attempts+1, d.opts.RetryMax)))
			if it.Attempts+1 >= maxUnknownTries {
				status = store.OutboxFailed
			}
		case outFailed, outFatal:
			status = store.OutboxFailed
		}
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := d.store.FinishOutbox(wctx, it.ID, status, out.reason, next)
		wcancel()
		if err != nil {
			sampled.Warn().Err(err).Int64("notification", it.ID).Msg("cannot record a notification's outcome")
		}
		result := map[string]string{store.OutboxSent: "sent", store.OutboxFailed: "failed", store.OutboxPending: "retry"}[status]
		d.metrics.notifications.WithLabelValues(it.Kind, result).Inc()
		e := log.Debug()
		if status != store.OutboxSent {
			e = sampled.Warn()
		}
		e.Str("kind", it.Kind).Int64("notification", it.ID).Int("attempt", it.Attempts+1).Str("result", result).
			Str("reason", out.reason).Msg("notification")
	}
	if len(due) == deleteBatch {
		return 0
	}
	next, ok, err := d.store.NextOutboxAt(ctx)
	if err != nil || !ok {
		return idlePoll
	}
	return min(max(next.Sub(d.opts.Now()), 0), idlePoll)
}

// send makes one attempt at a notification.
func (d *Daemon) send(ctx context.Context, it store.OutboxItem) outcome {
	var n notice
	if err := json.Unmarshal([]byte(it.Payload), &n); err != nil {
		return outcome{kind: outFailed, reason: "unreadable payload: " + err.Error()}
	}
	switch it.Kind {
	case store.KindAlert:
		return d.post(ctx, n.Channel, n.Text)
	case store.KindAuthor:
		if n.Mode == "ephemeral" {
			_, err := d.poster.PostEphemeralContext(ctx, n.Channel, n.User, slack.MsgOptionText(n.Text, false))
			out := d.slackOutcome("chat.postEphemeral", err)
			if out.kind != outFailed {
				return out
			}
			// The conversation may be gone for them (or for the poster):
			// a direct message still reaches the author.
		}
		ch, _, _, err := d.poster.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{n.User}})
		if err != nil {
			return d.slackOutcome("conversations.open", err)
		}
		return d.post(ctx, ch.ID, n.Text)
	case store.KindWebhook:
		return d.postWebhook(ctx, n.Body)
	}
	return outcome{kind: outFailed, reason: "unknown notification kind " + it.Kind}
}

// post sends a message with chat.postMessage, remembered as our own first.
func (d *Daemon) post(ctx context.Context, channel, text string) outcome {
	d.own.add(channel, text)
	_, _, err := d.poster.PostMessageContext(ctx, channel, slack.MsgOptionText(text, false))
	return d.slackOutcome("chat.postMessage", err)
}

// escape escapes &, < and > in text that goes into a Slack message, so
// that an excerpt or a description is shown as written, not read as markup.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackOutcome classifies a Web API answer for a notification and counts
// errors in the metrics. A token problem fails the notification only: it
// must not stop deletions (the deleter decides that for itself).
func (d *Daemon) slackOutcome(method string, err error) outcome {
	if err == nil {
		return outcome{kind: outDone}
	}
	d.metrics.slackErrors.WithLabelValues(method, errCode(err)).Inc()
	out := classifySlack(err)
	if out.kind == outFatal {
		out.kind = outFailed
	}
	out.reason = method + ": " + out.reason
	return out
}

func (d *Daemon) postWebhook(ctx context.Context, body []byte) outcome {
	target := d.opts.Notify.WebhookURL
	if target == "" {
		return outcome{kind: outFailed, reason: "no webhook_url configured any more"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return outcome{kind: outFailed, reason: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "securechat")
	resp, err := d.opts.HTTPClient.Do(req)
	if err != nil {
		// A webhook URL often embeds a secret: report the error without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return outcome{kind: outRetry, reason: "webhook: " + err.Error()}
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return outcome{kind: outDone}
	case resp.StatusCode == http.StatusTooManyRequests:
		wait := time.Minute
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			wait = time.Duration(s) * time.Second
		}
		return outcome{kind: outRateLimited, wait: wait, reason: "webhook: HTTP 429"}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		return outcome{kind: outRetry, reason: "webhook: HTTP " + strconv.Itoa(resp.StatusCode)}
	}
	return outcome{kind: outFailed, reason: "webhook: HTTP " + strconv.Itoa(resp.StatusCode)}
}

// errCode names a Web API error for metrics: Slack's code, ratelimited,
// http_NNN or network.
func errCode(err error) string {
	var se slack.SlackErrorResponse
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	switch {
	case errors.As(err, &se):
		return se.Err
	case errors.As(err, &rl):
		return "ratelimited"
	case errors.As(err, &sc):
		return "http_" + strconv.Itoa(sc.Code)
	}
	return "network"
}
