package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/securechat/securechat/bot/interact"
	"github.com/securechat/securechat/bot/internal/wait"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/slackapi"
	"github.com/securechat/securechat/store"
)

// outboxRetention is how long sent notifications stay in the database.
const outboxRetention = 7 * 24 * time.Hour

// outboxBatch is how many due notifications one pass sends.
const outboxBatch = 100

// digestBatch is how many due notifications one pass reads when digests
// are on: a digest merges every leak alert due (its text stays short; the
// webhook digest holds them all).
const digestBatch = 1000

// Poster is the part of the Slack client the notifier uses.
type Poster interface {
	PostMessageContext(ctx context.Context, channel string, options ...slack.MsgOption) (string, string, error)
	PostEphemeralContext(ctx context.Context, channel, userID string, options ...slack.MsgOption) (string, error)
	OpenConversationContext(ctx context.Context, params *slack.OpenConversationParameters) (*slack.Channel, bool, bool, error)
}

// Outbox is the notifier's view: due notifications, fenced claims and
// outcomes, pruning.
type Outbox interface {
	DueOutbox(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error)
	NextOutboxAt(ctx context.Context) (time.Time, bool, error)
	ClaimOutbox(ctx context.Context, id int64, now time.Time, lease time.Duration) (string, error)
	FinishOutbox(ctx context.Context, id int64, token, status, reason string, next time.Time) error
	PruneOutbox(ctx context.Context, before time.Time) (int64, error)
}

type NotifierDeps struct {
	Store      Outbox
	Poster     Poster
	HTTP       *http.Client // webhooks
	WebhookURL string
	Metrics    *metrics.Metrics
	Log        zerolog.Logger
	Now        func() time.Time
	RetryMax   time.Duration
	// DigestAbove: when more alerts (or webhook events) than this would
	// go out within a minute, the due ones are merged into one digest (0:
	// never).
	DigestAbove int
}

// Notifier sends the notifications queued in the outbox: author notices,
// alert-channel lines and webhook events. A notification that fails is
// retried with backoff, up to maxUnknownTries attempts, and never holds up
// detection or deletion. It remembers what it posted, so that the pipeline
// does not scan securechat's own messages.
type Notifier struct {
	NotifierDeps
	wakeCh chan struct{}
	// resumeAt is when a 429's Retry-After has passed: nothing is sent
	// before it, however many notifications are queued (and wake the
	// notifier) meanwhile. run's goroutine only.
	resumeAt time.Time
	own      ownPosts
	sent     map[string][]time.Time // kind → sends in the last minute (alerts, webhooks)
	digest   map[string]time.Time   // kind → when the last digest went out
	// Leader, when set, says whether this daemon runs the singleton jobs
	// (pruning sent notifications).
	Leader func() bool
}

// digestEvery is the least time between two digests of a kind: the alerts
// due meanwhile wait and go out in the next one.
const digestEvery = 5 * time.Second

func NewNotifier(d NotifierDeps) *Notifier {
	return &Notifier{NotifierDeps: d, wakeCh: make(chan struct{}, 1), sent: map[string][]time.Time{}, digest: map[string]time.Time{}}
}

// Wake tells the notifier that a notification was queued.
func (n *Notifier) Wake() { wait.Nudge(n.wakeCh) }

// IsOwn reports whether a message is one the notifier posted.
func (n *Notifier) IsOwn(channel, text string) bool { return n.own.has(channel, text) }

// Run sends due notifications until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	sampled := n.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute})
	var pruned time.Time
	for {
		if now := n.Now(); now.Sub(pruned) > time.Hour && (n.Leader == nil || n.Leader()) {
			pruned = now
			if c, err := n.Store.PruneOutbox(ctx, now.Add(-outboxRetention)); err != nil {
				sampled.Warn().Err(err).Msg("cannot prune sent notifications")
			} else if c > 0 {
				n.Log.Debug().Int64("pruned", c).Msg("pruned sent notifications")
			}
		}
		// A wake-up during Slack's Retry-After does not end it.
		if pause := time.Until(n.resumeAt); pause > 0 {
			if wait.Sleep(ctx, pause) != nil {
				return
			}
		}
		wait := n.sendDue(ctx, sampled)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-n.wakeCh:
			t.Stop()
		case <-t.C:
		}
	}
}

// sendDue sends every due notification and returns how long to wait before
// looking again.
func (n *Notifier) sendDue(ctx context.Context, sampled zerolog.Logger) time.Duration {
	batch := outboxBatch
	if n.DigestAbove > 0 {
		batch = digestBatch // a digest takes every alert due
	}
	due, err := n.Store.DueOutbox(ctx, n.Now(), batch)
	if err != nil {
		if ctx.Err() == nil {
			sampled.Warn().Err(err).Msg("notifier cannot read the outbox; retrying")
		}
		return time.Second
	}
	due, digestWait := n.digests(ctx, due, sampled)
	for _, it := range due {
		if ctx.Err() != nil {
			return 0
		}
		token, err := n.Store.ClaimOutbox(ctx, it.ID, n.Now(), slackapi.ClaimLease)
		if err != nil {
			if ctx.Err() == nil {
				sampled.Warn().Err(err).Int64("notification", it.ID).Msg("cannot claim a notification; retrying")
			}
			return time.Second
		}
		if token == "" {
			continue // another daemon on this database has it
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slackapi.CallTimeout)
		out := n.send(sctx, it)
		cancel()
		now := n.Now()
		status, next := store.OutboxSent, now
		var pause time.Duration
		switch out.Kind {
		case slackapi.OutRetry, slackapi.OutRateLimited:
			status = store.OutboxPending
			next = now.Add(max(out.Wait, slackapi.Backoff(it.Attempts+1, n.RetryMax)))
			if it.Attempts+1 >= slackapi.MaxUnknownTries {
				status = store.OutboxFailed
			}
			if out.Kind == slackapi.OutRateLimited {
				// Retry-After is about the method, not the item: wait it out
				// before sending anything else.
				pause = max(out.Wait, slackapi.MinRateLimitWait)
			}
		case slackapi.OutFailed, slackapi.OutFatal:
			status = store.OutboxFailed
		}
		err = n.finish(ctx, it.ID, token, status, out.Reason, next)
		if err != nil {
			sampled.Warn().Err(err).Int64("notification", it.ID).Msg("cannot record a notification's outcome")
		}
		result := map[string]string{store.OutboxSent: "sent", store.OutboxFailed: "failed", store.OutboxPending: "retry"}[status]
		n.Metrics.Notifications.WithLabelValues(it.Kind, result).Inc()
		if status == store.OutboxSent {
			n.sent[it.Kind] = append(n.sent[it.Kind], now)
		}
		e := n.Log.Debug()
		if status != store.OutboxSent {
			e = sampled.Warn()
		}
		e.Str("kind", it.Kind).Int64("notification", it.ID).Int("attempt", it.Attempts+1).Str("result", result).
			Str("reason", out.Reason).Msg("notification")
		if pause > 0 {
			n.resumeAt = time.Now().Add(pause) // monotonic: a clock step does not move it
			return pause
		}
	}
	if digestWait > 0 {
		return digestWait // alerts wait for the next digest; the rest were sent
	}
	if len(due) == batch {
		return 0
	}
	next, ok, err := n.Store.NextOutboxAt(ctx)
	if err != nil || !ok {
		return slackapi.IdlePoll
	}
	return min(max(next.Sub(n.Now()), 0), slackapi.IdlePoll)
}

// recent counts the sends of a kind in the last minute.
func (n *Notifier) recent(kind string) int {
	cut := n.Now().Add(-time.Minute)
	ts := n.sent[kind]
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	n.sent[kind] = ts[i:]
	return len(ts) - i
}

// digests merges the due leak alerts, and the due leak webhook events, into
// one digest each when sending them one by one would pass digestAbove in a
// minute, at most one digest of a kind every digestEvery (the others wait
// for the next). It returns the rest, and how soon to look again for the
// alerts left waiting (0: none).
func (n *Notifier) digests(ctx context.Context, due []store.OutboxItem, sampled zerolog.Logger) ([]store.OutboxItem, time.Duration) {
	if n.DigestAbove <= 0 {
		return due, 0
	}
	var wait time.Duration
	var rest []store.OutboxItem
	byKind := map[string][]store.OutboxItem{}
	for _, it := range due {
		if it.Kind == store.KindAlert || it.Kind == store.KindWebhook {
			var p Notice
			if json.Unmarshal([]byte(it.Payload), &p) == nil && p.Leak {
				byKind[it.Kind] = append(byKind[it.Kind], it)
				continue
			}
		}
		rest = append(rest, it)
	}
	for _, kind := range []string{store.KindAlert, store.KindWebhook} {
		items := byKind[kind]
		if len(items) == 0 || n.recent(kind)+len(items) <= n.DigestAbove {
			rest = append(rest, items...)
			continue
		}
		if left := digestEvery - n.Now().Sub(n.digest[kind]); left > 0 {
			if wait == 0 || left < wait {
				wait = left
			}
			continue // they go out in the next digest
		}
		n.sendDigest(ctx, kind, items, sampled)
	}
	return rest, wait
}

// sendDigest claims items, sends them as one digest, and records the
// outcome of each.
func (n *Notifier) sendDigest(ctx context.Context, kind string, items []store.OutboxItem, sampled zerolog.Logger) {
	var claimed []store.OutboxItem
	var notes []Notice
	var bodies []json.RawMessage
	for _, it := range items {
		token, err := n.Store.ClaimOutbox(ctx, it.ID, n.Now(), slackapi.ClaimLease)
		if err != nil || token == "" {
			continue
		}
		it.ClaimToken = token
		var p Notice
		if err := json.Unmarshal([]byte(it.Payload), &p); err != nil {
			continue // left to the one-by-one path, which fails it with the reason
		}
		claimed, notes, bodies = append(claimed, it), append(notes, p), append(bodies, p.Body)
	}
	if len(claimed) == 0 {
		return
	}
	var out slackapi.Outcome
	if kind == store.KindAlert {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slackapi.CallTimeout)
		out = n.post(sctx, notes[0].Channel, DigestText(notes), nil)
		cancel()
		n.finishDigest(ctx, claimed, out, sampled)
	} else {
		// Bounded bodies: a digest is split before it passes
		// maxDigestBody, and one the receiver refuses (a 413, a 400) is
		// split again down to single events, so that an event fails only
		// for itself, never for its neighbours.
		start := 0
		size := 0
		for i, b := range bodies {
			if i > start && size+len(b) > maxDigestBody {
				out = n.sendWebhookDigest(ctx, claimed[start:i], bodies[start:i], sampled)
				start, size = i, 0
			}
			size += len(b) + 1
		}
		out = n.sendWebhookDigest(ctx, claimed[start:], bodies[start:], sampled)
	}
	now := n.Now()
	n.digest[kind] = now
	if out.Kind == slackapi.OutDone {
		n.sent[kind] = append(n.sent[kind], now)
	}
	n.Log.Info().Str("kind", kind).Int("merged", len(claimed)).Str("reason", out.Reason).Msg("sent a digest instead of one notification each")
}

// maxDigestBody bounds a webhook digest's events, in bytes: receivers
// commonly refuse bodies over a few hundred KB (HTTP 413).
const maxDigestBody = 256 << 10

// sendWebhookDigest POSTs items (bodies are their events) as one digest and
// records each one's outcome; a digest of several that the receiver
// refuses for good is split in two and each half sent on its own, down to
// single events, whose own outcome is then recorded. It returns the
// outcome of the last POST.
func (n *Notifier) sendWebhookDigest(ctx context.Context, items []store.OutboxItem, bodies []json.RawMessage, sampled zerolog.Logger) slackapi.Outcome {
	var body []byte
	if len(items) == 1 {
		body = bodies[0]
	} else {
		body, _ = json.Marshal(map[string]any{"id": fmt.Sprintf("digest:%d-%d", items[0].ID, items[len(items)-1].ID),
			"event": "digest", "count": len(bodies), "events": bodies, "time": n.Now().UTC()})
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slackapi.CallTimeout)
	out := n.postWebhook(sctx, body)
	cancel()
	if (out.Kind == slackapi.OutFailed || out.Kind == slackapi.OutFatal) && len(items) > 1 {
		n.Log.Warn().Int("events", len(items)).Int("bytes", len(body)).Str("reason", out.Reason).
			Msg("the webhook refused a digest; sending it in halves, so that no event fails for another")
		half := len(items) / 2
		n.sendWebhookDigest(ctx, items[:half], bodies[:half], sampled)
		return n.sendWebhookDigest(ctx, items[half:], bodies[half:], sampled)
	}
	n.finishDigest(ctx, items, out, sampled)
	return out
}

// finishDigest records the outcome of a digest for each of its items.
func (n *Notifier) finishDigest(ctx context.Context, claimed []store.OutboxItem, out slackapi.Outcome, sampled zerolog.Logger) {
	now := n.Now()
	for _, it := range claimed {
		status, next, reason := store.OutboxSent, now, "sent in a digest of "+strconv.Itoa(len(claimed))
		switch out.Kind {
		case slackapi.OutRetry, slackapi.OutRateLimited:
			status, next, reason = store.OutboxPending, now.Add(max(out.Wait, slackapi.Backoff(it.Attempts+1, n.RetryMax))), out.Reason
			if it.Attempts+1 >= slackapi.MaxUnknownTries {
				status = store.OutboxFailed
			}
		case slackapi.OutFailed, slackapi.OutFatal:
			status, reason = store.OutboxFailed, out.Reason
		}
		if err := n.finish(ctx, it.ID, it.ClaimToken, status, reason, next); err != nil {
			sampled.Warn().Err(err).Int64("notification", it.ID).Msg("cannot record a notification's outcome")
		}
		n.Metrics.Notifications.WithLabelValues(it.Kind, map[string]string{store.OutboxSent: "digest", store.OutboxFailed: "failed", store.OutboxPending: "retry"}[status]).Inc()
	}
}

// finish records a send's outcome, trying again within writeTimeout when
// the write itself failed (a database connection lost, a failover): an
// outcome not recorded means the notice is sent again once its lease has
// passed, a duplicate the member sees. Writing it again is safe: the
// update only applies to the pending item with this claim's token.
func (n *Notifier) finish(ctx context.Context, id int64, token, status, reason string, next time.Time) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slackapi.WriteTimeout)
	defer cancel()
	var err error
	for try := 1; ; try++ {
		err = n.Store.FinishOutbox(wctx, id, token, status, reason, next)
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrClaimLost) {
			return err
		}
		if try == 1 {
			n.Log.Warn().Err(err).Int64("notification", id).Msg("cannot record a notification's outcome; trying again")
		}
		if wait.Sleep(wctx, time.Duration(try)*100*time.Millisecond) != nil {
			return err
		}
	}
}

// send makes one attempt at a notification.
func (n *Notifier) send(ctx context.Context, it store.OutboxItem) slackapi.Outcome {
	var p Notice
	if err := json.Unmarshal([]byte(it.Payload), &p); err != nil {
		return slackapi.Outcome{Kind: slackapi.OutFailed, Reason: "unreadable payload: " + err.Error()}
	}
	switch it.Kind {
	case store.KindAlert:
		return n.post(ctx, p.Channel, p.Text, p.Blocks)
	case store.KindAuthor:
		if p.Mode == "ephemeral" {
			_, err := n.Poster.PostEphemeralContext(ctx, p.Channel, p.User, msgOptions(p.Text, p.Blocks)...)
			out := n.result("chat.postEphemeral", err)
			if out.Kind != slackapi.OutFailed {
				return out
			}
			// The conversation may be gone for them (or for the poster):
			// a direct message still reaches the author.
		}
		ch, _, _, err := n.Poster.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{p.User}})
		if err != nil {
			return n.result("conversations.open", err)
		}
		return n.post(ctx, ch.ID, p.Text, p.Blocks)
	case store.KindWebhook:
		return n.postWebhook(ctx, p.Body)
	}
	return slackapi.Outcome{Kind: slackapi.OutFailed, Reason: "unknown notification kind " + it.Kind}
}

// post sends a message with chat.postMessage, remembered as our own first:
// its message event can arrive before chat.postMessage answers.
func (n *Notifier) post(ctx context.Context, channel, text string, blocks json.RawMessage) slackapi.Outcome {
	n.own.add(channel, text)
	_, _, err := n.Poster.PostMessageContext(ctx, channel, msgOptions(text, blocks)...)
	return n.result("chat.postMessage", err)
}

// msgOptions are a message's text and, when it has them, its blocks (the
// text stays: it is the notification's and the fallback's).
func msgOptions(text string, blocks json.RawMessage) []slack.MsgOption {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 {
		if bs := interact.SlackBlocks(blocks); len(bs.BlockSet) > 0 {
			opts = append(opts, slack.MsgOptionBlocks(bs.BlockSet...))
		}
	}
	return opts
}

// result classifies a Web API answer and counts an error in the metrics.
func (n *Notifier) result(method string, err error) slackapi.Outcome {
	if err != nil {
		n.Metrics.SlackErrors.WithLabelValues(method, slackapi.ErrCode(err)).Inc()
	}
	return slackapi.ClassifyPost(method, err)
}

func (n *Notifier) postWebhook(ctx context.Context, body []byte) slackapi.Outcome {
	if n.WebhookURL == "" {
		return slackapi.Outcome{Kind: slackapi.OutFailed, Reason: "no webhook_url configured any more"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return slackapi.Outcome{Kind: slackapi.OutFailed, Reason: "webhook: cannot build the request (check webhook_url)"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "securechat")
	resp, err := n.HTTP.Do(req)
	if err != nil {
		// A webhook URL often embeds a secret: report the error without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return slackapi.Outcome{Kind: slackapi.OutRetry, Reason: "webhook: " + err.Error()}
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return slackapi.Outcome{Kind: slackapi.OutDone}
	case resp.StatusCode == http.StatusTooManyRequests:
		wait := time.Minute
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			wait = time.Duration(s) * time.Second
		}
		return slackapi.Outcome{Kind: slackapi.OutRateLimited, Wait: wait, Reason: "webhook: HTTP 429"}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		return slackapi.Outcome{Kind: slackapi.OutRetry, Reason: "webhook: HTTP " + strconv.Itoa(resp.StatusCode)}
	}
	return slackapi.Outcome{Kind: slackapi.OutFailed, Reason: "webhook: HTTP " + strconv.Itoa(resp.StatusCode)}
}

// ownPosts remembers the last messages securechat itself posted (alerts,
// DM notices), by conversation and text, so that their message events are
// not scanned: with a rule that happens to match a masked excerpt, scanning
// them would loop. It holds a bounded number of entries.
type ownPosts struct {
	mu   sync.Mutex
	set  map[string]int
	ring [256]string
	next int
}

func (o *ownPosts) add(channel, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.set == nil {
		o.set = map[string]int{}
	}
	if old := o.ring[o.next]; old != "" {
		if o.set[old]--; o.set[old] <= 0 {
			delete(o.set, old)
		}
	}
	key := channel + "\x00" + text
	o.ring[o.next] = key
	o.set[key]++
	o.next = (o.next + 1) % len(o.ring)
}

func (o *ownPosts) has(channel, text string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.set[channel+"\x00"+text] > 0
}
