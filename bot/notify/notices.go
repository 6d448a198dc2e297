// Package notify tells people about leaks: it renders the notices (the
// author's notice with its buttons, the admins' alert, reports, noisy
// rules, breaker trips, trial ends and outages) as outbox items, which the
// store commits with the change they describe, and its Notifier sends the
// queued ones (Slack posts, webhook events, digests) with retries.
package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/securechat/securechat/bot/interact"
	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

// Config configures notifications. Empty fields turn a kind off.
type Config struct {
	// Author is how the member whose message was deleted is told:
	// "ephemeral" (in the conversation, visible to them only), "dm", or ""
	// / "off".
	Author string
	// AuthorMessage is the notice's template: {rule}, {excerpt}, {channel}
	// and {user} are filled in.
	AuthorMessage string
	// BotToken (xoxb-…), when set, posts notices and alerts as the app's bot
	// user; otherwise they are posted with the user token.
	BotToken string
	// AlertChannel receives a short line per leak.
	AlertChannel string
	// WebhookURL receives a JSON POST per leak outcome.
	WebhookURL string
	// NoisyReports is how many "Not a secret" reports flag a rule as
	// noisy in the alert channel (once per rule) [3]; negative: never.
	NoisyReports int
	// DigestAbove: when more alerts (or webhook events) than this would go
	// out within a minute, the due ones are merged into one digest [10];
	// negative: never.
	DigestAbove int
}

// Notice is an outbox payload. It holds masked data only.
type Notice struct {
	Channel string `json:"channel,omitempty"` // where to post (alert channel, or the message's channel)
	User    string `json:"user,omitempty"`    // the author, for author notices
	Mode    string `json:"mode,omitempty"`    // author notices: ephemeral or dm
	Text    string `json:"text,omitempty"`    // Slack text
	// Blocks is the Block Kit layout with the buttons (only with a bot
	// user: Slack sends the clicks to the app that posted the message).
	Blocks json.RawMessage `json:"blocks,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"` // webhook JSON
	// Leak alerts also carry their findings, for digests: "regex N (rule)"
	// and the masked excerpt of each (at most alertFindings).
	Rules    []string `json:"rules,omitempty"`
	Excerpts []string `json:"excerpts,omitempty"`
	Where    string   `json:"where,omitempty"` // the leak's channel
	// Leak is true for leak alerts and leak webhook events: the ones a
	// digest may merge. Breaker, trial, outage and sweep notices are always
	// sent on their own.
	Leak bool `json:"leak,omitempty"`
}

// WebhookEvent is the JSON body securechat POSTs to the webhook, one per
// leaking message and outcome.
type WebhookEvent struct {
	// ID is the same for every delivery of one event: a send whose outcome
	// was lost (a crash after the POST) may be repeated, and receivers can
	// de-duplicate on it.
	ID       string           `json:"id"`
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

// Notices builds the outbox items for a leak: what the author, the alert
// channel and the webhook are told. It only builds text; the notifier sends.
type Notices struct {
	Cfg Config
	Now func() time.Time
}

// Any reports whether Any kind of notification is configured.
func (n Notices) Any() bool {
	return n.Cfg.Author != "" || n.Cfg.AlertChannel != "" || n.Cfg.WebhookURL != ""
}

// Outcome builds the admin alert and the webhook event for a leaking message
// whose Outcome is known. Outcome is what the alert says ("deleted", "could
// not be deleted", "recorded (monitor: not deleted)").
func (n Notices) Outcome(msg store.Message, fs []store.Finding, action, outcome, reason string) []store.OutboxItem {
	var out []store.OutboxItem
	if n.Cfg.AlertChannel != "" {
		al := Notice{Channel: n.Cfg.AlertChannel, Text: alertText(msg, fs, action, outcome, reason), Where: msg.Channel, Leak: true}
		if n.Cfg.buttons() {
			al.Blocks = interact.AlertBlocks(al.Text, msg.Channel, msg.TS, interactFindings(fs), false)
		}
		for _, f := range fs[:min(len(fs), alertFindings)] {
			al.Rules = append(al.Rules, fmt.Sprintf("regex %d (%s)", f.RegexID, detect.Shorten(f.Rule, 60)))
			al.Excerpts = append(al.Excerpts, f.Excerpt)
		}
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: Marshal(al)})
	}
	if n.Cfg.WebhookURL != "" {
		ev := webhookEvent(msg, fs, action, outcome, reason, n.Now())
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: Marshal(Notice{Body: json.RawMessage(Marshal(ev)), Leak: true})})
	}
	return out
}

// Author builds the notice to the member whose message was deleted.
func (n Notices) Author(msg store.Message, fs []store.Finding) []store.OutboxItem {
	if n.Cfg.Author == "" || msg.User == "" || len(fs) == 0 {
		return nil
	}
	p := Notice{Channel: msg.Channel, User: msg.User, Mode: n.Cfg.Author, Text: authorText(n.Cfg.AuthorMessage, msg, fs)}
	if n.Cfg.buttons() {
		p.Blocks = interact.AuthorBlocks(p.Text, msg.Channel, msg.TS)
	}
	return []store.OutboxItem{{Kind: store.KindAuthor, Payload: Marshal(p)}}
}

// buttons reports whether notices and alerts carry buttons: only a bot
// user's messages do (its app receives the clicks over Socket Mode).
func (c Config) buttons() bool { return c.BotToken != "" }

func interactFindings(fs []store.Finding) []interact.Finding {
	out := make([]interact.Finding, 0, len(fs))
	for _, f := range fs {
		out = append(out, interact.Finding{RegexID: f.RegexID, Excerpt: f.Excerpt})
	}
	return out
}

// Reported builds the admins' alert (with its buttons) and webhook event
// of a member's report about their removed message.
func (n Notices) Reported(ls []store.Leak, reporter, kind, reason string) []store.OutboxItem {
	if len(ls) == 0 {
		return nil
	}
	var out []store.OutboxItem
	msg, fs := FindingsOf(ls)
	var parts []string
	for _, f := range fs[:min(len(fs), alertFindings)] {
		parts = append(parts, fmt.Sprintf("regex %d (%s) `%s`", f.RegexID, Escape(detect.Shorten(f.Rule, 80)), Escape(f.Excerpt)))
	}
	ids := make([]string, 0, len(ls))
	for _, l := range ls {
		ids = append(ids, strconv.FormatInt(l.ID, 10))
	}
	if n.Cfg.AlertChannel != "" {
		var text string
		if kind == store.ReportRotated {
			text = fmt.Sprintf(":recycle: securechat: <@%s> rotated the secret of their removed message in <#%s> (leak %s: %s).",
				reporter, msg.Channel, strings.Join(ids, ", "), strings.Join(DedupStrings(parts), ", "))
		} else {
			text = fmt.Sprintf(":speech_balloon: securechat: <@%s> says their removed message in <#%s> is *not a secret* (leak %s: %s).",
				reporter, msg.Channel, strings.Join(ids, ", "), strings.Join(DedupStrings(parts), ", "))
			if reason != "" {
				text += " Why: \u201c" + Escape(reason) + "\u201d."
			}
			text += fmt.Sprintf(" Decide: allow the value (`securechat leaks allow %s`), keep it deleted, or pause the rule.", ids[0])
		}
		al := Notice{Channel: n.Cfg.AlertChannel, Text: text, Where: msg.Channel}
		if n.Cfg.buttons() && kind == store.ReportNotSecret {
			al.Blocks = interact.AlertBlocks(text, msg.Channel, msg.TS, interactFindings(fs), true)
		}
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: Marshal(al)})
	}
	if n.Cfg.WebhookURL != "" {
		now := n.Now().UTC()
		body := map[string]any{"id": fmt.Sprintf("report:%s:%s:%s:%s", msg.Channel, msg.TS, reporter, kind), "event": "report",
			"kind": kind, "channel": msg.Channel, "ts": msg.TS, "user": reporter, "reason": reason, "leak_ids": leakIDs(ls), "time": now}
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: Marshal(Notice{Body: []byte(Marshal(body))})})
	}
	return out
}

// Noisy builds the alert of a rule whose "Not a secret" reports passed the
// threshold, with the command to pause it.
func (n Notices) Noisy(r store.NoisyRule) []store.OutboxItem {
	if n.Cfg.AlertChannel == "" {
		return nil
	}
	text := fmt.Sprintf(":loudspeaker: securechat: regex %d (%s) looks noisy: %d of its %d leaks were reported *not a secret* by %d member(s). "+
		"Pause it while you refine it: `/securechat pause %d` or `securechat regex update %d --action monitor`. Its reports: `securechat leaks list --regex %d --reported any`.",
		r.RegexID, Escape(detect.Shorten(r.Rule, 80)), r.Reports, r.Leaks, r.Reporters, r.RegexID, r.RegexID, r.RegexID)
	return []store.OutboxItem{{Kind: store.KindAlert, Payload: Marshal(Notice{Channel: n.Cfg.AlertChannel, Text: text})}}
}

// undeletableMessage is the notice to the author of a direct message that
// Slack does not let securechat delete.
const undeletableMessage = "Your direct message in <#{channel}> contains what looks like a secret ({rule}: `{excerpt}`). " +
	"Slack does not let admins delete direct messages, so securechat could not remove it: delete it yourself, " +
	"and if it is a real credential or card, rotate or revoke it now."

// AuthorUndeletable builds the notice to the author of a leaking direct
// message that cannot be deleted for them.
func (n Notices) AuthorUndeletable(msg store.Message, fs []store.Finding) []store.OutboxItem {
	if n.Cfg.Author == "" || msg.User == "" || len(fs) == 0 {
		return nil
	}
	return []store.OutboxItem{{Kind: store.KindAuthor,
		Payload: Marshal(Notice{Channel: msg.Channel, User: msg.User, Mode: n.Cfg.Author, Text: authorText(undeletableMessage, msg, fs)})}}
}

// alertFindings is how many findings an alert lists; the rest are counted.
// A Slack message holds 40,000 characters, and an alert must never fail as
// too long: hundreds of findings in one paste are possible.
const alertFindings = 5

// alertText is the alert channel's line for one leaking message.
func alertText(msg store.Message, fs []store.Finding, action, outcome, reason string) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("regex %d (%s) `%s`", f.RegexID, Escape(detect.Shorten(f.Rule, 80)), Escape(f.Excerpt)))
	}
	parts = DedupStrings(parts)
	listed := strings.Join(parts[:min(len(parts), alertFindings)], ", ")
	if more := len(parts) - alertFindings; more > 0 {
		listed += fmt.Sprintf(" and %d more (%d findings in all; 'securechat leaks list --channel %s' shows them)", more, len(fs), msg.Channel)
	}
	text := fmt.Sprintf(":rotating_light: securechat: leak in <#%s> by <@%s> (ts %s): %s. Action: %s; %s.",
		msg.Channel, msg.User, msg.TS, listed, action, outcome)
	if reason != "" {
		text += " Reason: " + reason + "."
	}
	return text
}

// authorText fills the author notice template.
func authorText(template string, msg store.Message, fs []store.Finding) string {
	var rules []string
	for _, f := range fs {
		rules = append(rules, f.Rule)
	}
	rule := strings.Join(DedupStrings(rules), ", ")
	if rule == "" {
		rule = "regex " + strconv.FormatInt(fs[0].RegexID, 10)
	}
	return strings.NewReplacer("{rule}", Escape(rule), "{excerpt}", Escape(fs[0].Excerpt), "{channel}", msg.Channel, "{user}", msg.User).
		Replace(template)
}

// webhookEvent is the webhook's JSON body for one leaking message.
func webhookEvent(msg store.Message, fs []store.Finding, action, outcome, reason string, now time.Time) WebhookEvent {
	o := webhookOutcome(action, reason, outcome)
	ev := WebhookEvent{ID: "leak:" + msg.Channel + ":" + msg.TS + ":" + o + ":" + strconv.FormatInt(now.UnixMilli(), 10),
		Event: "leak", Channel: msg.Channel, User: msg.User, TS: msg.TS, Action: action,
		Outcome: o, Reason: reason, Time: now.UTC()}
	for _, f := range fs {
		ev.Findings = append(ev.Findings, WebhookFinding{RegexID: f.RegexID, Rule: f.Rule, Excerpt: f.Excerpt})
	}
	return ev
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

// FindingsOf turns the leaks of one deletion back into findings for notes.
func FindingsOf(ls []store.Leak) (store.Message, []store.Finding) {
	var msg store.Message
	var fs []store.Finding
	for _, l := range ls {
		msg = store.Message{Channel: l.Channel, User: l.User, TS: l.TS}
		fs = append(fs, store.Finding{RegexID: l.RegexID, Rule: l.Rule, Excerpt: l.Excerpt, Action: l.Action})
	}
	return msg, fs
}

// Escape escapes &, < and > in text that goes into a Slack message, so
// that an excerpt or a description is shown as written, not read as markup.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func DedupStrings(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func Marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TrialEnded builds the alert and webhook event of a rule whose trial ended.
func (n Notices) TrialEnded(r store.Regex) []store.OutboxItem {
	var out []store.OutboxItem
	desc := r.Description
	if desc == "" {
		desc = detect.Shorten(r.Pattern, 60)
	}
	if n.Cfg.AlertChannel != "" {
		text := fmt.Sprintf(":alarm_clock: securechat: the trial of regex %d (%s) ended: it now deletes the messages it matches. "+
			"What it recorded during the trial: `securechat leaks list --regex %d`. To stop it: `securechat regex update %d --action monitor`.",
			r.ID, Escape(detect.Shorten(desc, 80)), r.ID, r.ID)
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: Marshal(Notice{Channel: n.Cfg.AlertChannel, Text: text})})
	}
	if n.Cfg.WebhookURL != "" {
		now := n.Now().UTC()
		body := map[string]any{"id": fmt.Sprintf("trial:%d:%d", r.ID, now.UnixMilli()), "event": "trial_ended",
			"regex_id": r.ID, "rule": desc, "action": store.ActionDelete, "time": now}
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: Marshal(Notice{Body: []byte(Marshal(body))})})
	}
	return out
}

// digestExcerpts is how many masked excerpts a digest shows.
const digestExcerpts = 5

// DigestText merges alerts into one message: how many, counts per rule, and
// the first few masked excerpts.
func DigestText(items []Notice) string {
	counts := map[string]int{}
	var order []string
	var excerpts []string
	for _, it := range items {
		for i, r := range it.Rules {
			if counts[r] == 0 {
				order = append(order, r)
			}
			counts[r]++
			if len(excerpts) < digestExcerpts && i < len(it.Excerpts) {
				excerpts = append(excerpts, fmt.Sprintf("`%s` in <#%s>", Escape(it.Excerpts[i]), it.Where))
			}
		}
	}
	slices.SortStableFunc(order, func(a, b string) int { return counts[b] - counts[a] })
	var per []string
	for _, r := range order[:min(len(order), 10)] {
		per = append(per, fmt.Sprintf("%s ×%d", Escape(r), counts[r]))
	}
	if len(order) > 10 {
		per = append(per, fmt.Sprintf("%d more rules", len(order)-10))
	}
	text := fmt.Sprintf(":rotating_light: securechat digest: %d alerts at once (merged so as not to flood the channel)", len(items))
	if len(per) > 0 {
		text += ": " + strings.Join(per, ", ")
	}
	if len(excerpts) > 0 {
		text += ". First excerpts: " + strings.Join(excerpts, ", ")
	}
	return text + ". All of them: `securechat leaks list --since 1h`."
}

// Breaker builds the alert and webhook event of a tripped rule.
func (n Notices) Breaker(f store.Finding, why, resume string) []store.OutboxItem {
	var out []store.OutboxItem
	if n.Cfg.AlertChannel != "" {
		text := fmt.Sprintf(":octagonal_sign: securechat: the runaway-rule breaker switched regex %d (%s) to monitor: %s. Its queued deletions are held. Resume with: %s.",
			f.RegexID, Escape(detect.Shorten(f.Rule, 80)), why, resume)
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: Marshal(Notice{Channel: n.Cfg.AlertChannel, Text: text})})
	}
	if n.Cfg.WebhookURL != "" {
		now := n.Now().UTC()
		body := map[string]any{"id": fmt.Sprintf("breaker:%d:%d", f.RegexID, now.UnixMilli()), "event": "breaker",
			"regex_id": f.RegexID, "rule": f.Rule, "reason": why, "resume": resume, "time": now}
		b, _ := json.Marshal(body)
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: Marshal(Notice{Body: json.RawMessage(b)})})
	}
	return out
}

// Outage builds the alert for an Outage longer than the look-back.
func (n Notices) Outage(since, now time.Time, lookback time.Duration, cmd string) []store.OutboxItem {
	var out []store.OutboxItem
	if n.Cfg.AlertChannel != "" {
		text := fmt.Sprintf(":warning: securechat was not connected to Slack from %s to %s (%s). The catch-up scanned the last %s only: "+
			"messages posted before %s were not scanned. Scan them with: `%s`",
			since.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), now.Sub(since).Round(time.Minute), lookback,
			now.Add(-lookback).UTC().Format(time.RFC3339), cmd)
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: Marshal(Notice{Channel: n.Cfg.AlertChannel, Text: text})})
	}
	if n.Cfg.WebhookURL != "" {
		body := map[string]any{"id": fmt.Sprintf("outage:%d", since.UnixMilli()), "event": "outage",
			"offline_since": since.UTC(), "reconnected": now.UTC(), "lookback_seconds": int(lookback.Seconds()), "scan": cmd, "time": now.UTC()}
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: Marshal(Notice{Body: []byte(Marshal(body))})})
	}
	return out
}

func leakIDs(ls []store.Leak) []int64 {
	out := make([]int64, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}
