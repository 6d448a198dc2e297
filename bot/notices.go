package bot

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

// notice is an outbox payload. It holds masked data only.
type notice struct {
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

// notices builds the outbox items for a leak: what the author, the alert
// channel and the webhook are told. It only builds text; the notifier sends.
type notices struct {
	cfg Notify
	now func() time.Time
}

// any reports whether any kind of notification is configured.
func (n notices) any() bool {
	return n.cfg.Author != "" || n.cfg.AlertChannel != "" || n.cfg.WebhookURL != ""
}

// outcome builds the admin alert and the webhook event for a leaking message
// whose outcome is known. outcome is what the alert says ("deleted", "could
// not be deleted", "recorded (monitor: not deleted)").
func (n notices) outcome(msg store.Message, fs []store.Finding, action, outcome, reason string) []store.OutboxItem {
	var out []store.OutboxItem
	if n.cfg.AlertChannel != "" {
		al := notice{Channel: n.cfg.AlertChannel, Text: alertText(msg, fs, action, outcome, reason), Where: msg.Channel, Leak: true}
		if n.cfg.buttons() {
			al.Blocks = interact.AlertBlocks(al.Text, msg.Channel, msg.TS, interactFindings(fs), false)
		}
		for _, f := range fs[:min(len(fs), alertFindings)] {
			al.Rules = append(al.Rules, fmt.Sprintf("regex %d (%s)", f.RegexID, detect.Shorten(f.Rule, 60)))
			al.Excerpts = append(al.Excerpts, f.Excerpt)
		}
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: marshal(al)})
	}
	if n.cfg.WebhookURL != "" {
		ev := webhookEvent(msg, fs, action, outcome, reason, n.now())
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: marshal(notice{Body: json.RawMessage(marshal(ev)), Leak: true})})
	}
	return out
}

// author builds the notice to the member whose message was deleted.
func (n notices) author(msg store.Message, fs []store.Finding) []store.OutboxItem {
	if n.cfg.Author == "" || msg.User == "" || len(fs) == 0 {
		return nil
	}
	p := notice{Channel: msg.Channel, User: msg.User, Mode: n.cfg.Author, Text: authorText(n.cfg.AuthorMessage, msg, fs)}
	if n.cfg.buttons() {
		p.Blocks = interact.AuthorBlocks(p.Text, msg.Channel, msg.TS)
	}
	return []store.OutboxItem{{Kind: store.KindAuthor, Payload: marshal(p)}}
}

// buttons reports whether notices and alerts carry buttons: only a bot
// user's messages do (its app receives the clicks over Socket Mode).
func (c Notify) buttons() bool { return c.BotToken != "" }

func interactFindings(fs []store.Finding) []interact.Finding {
	out := make([]interact.Finding, 0, len(fs))
	for _, f := range fs {
		out = append(out, interact.Finding{RegexID: f.RegexID, Excerpt: f.Excerpt})
	}
	return out
}

// reported builds the admins' alert (with its buttons) and webhook event
// of a member's report about their removed message.
func (n notices) reported(ls []store.Leak, reporter, kind, reason string) []store.OutboxItem {
	if len(ls) == 0 {
		return nil
	}
	var out []store.OutboxItem
	msg, fs := findingsOf(ls)
	var parts []string
	for _, f := range fs[:min(len(fs), alertFindings)] {
		parts = append(parts, fmt.Sprintf("regex %d (%s) `%s`", f.RegexID, escape(detect.Shorten(f.Rule, 80)), escape(f.Excerpt)))
	}
	ids := make([]string, 0, len(ls))
	for _, l := range ls {
		ids = append(ids, strconv.FormatInt(l.ID, 10))
	}
	if n.cfg.AlertChannel != "" {
		var text string
		if kind == store.ReportRotated {
			text = fmt.Sprintf(":recycle: securechat: <@%s> rotated the secret of their removed message in <#%s> (leak %s: %s).",
				reporter, msg.Channel, strings.Join(ids, ", "), strings.Join(dedupStrings(parts), ", "))
		} else {
			text = fmt.Sprintf(":speech_balloon: securechat: <@%s> says their removed message in <#%s> is *not a secret* (leak %s: %s).",
				reporter, msg.Channel, strings.Join(ids, ", "), strings.Join(dedupStrings(parts), ", "))
			if reason != "" {
				text += " Why: \u201c" + escape(reason) + "\u201d."
			}
			text += fmt.Sprintf(" Decide: allow the value (`securechat leaks allow %s`), keep it deleted, or pause the rule.", ids[0])
		}
		al := notice{Channel: n.cfg.AlertChannel, Text: text, Where: msg.Channel}
		if n.cfg.buttons() && kind == store.ReportNotSecret {
			al.Blocks = interact.AlertBlocks(text, msg.Channel, msg.TS, interactFindings(fs), true)
		}
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: marshal(al)})
	}
	if n.cfg.WebhookURL != "" {
		now := n.now().UTC()
		body := map[string]any{"id": fmt.Sprintf("report:%s:%s:%s:%s", msg.Channel, msg.TS, reporter, kind), "event": "report",
			"kind": kind, "channel": msg.Channel, "ts": msg.TS, "user": reporter, "reason": reason, "leak_ids": ls[0].ID, "time": now}
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: marshal(notice{Body: []byte(marshal(body))})})
	}
	return out
}

// noisy builds the alert of a rule whose "Not a secret" reports passed the
// threshold, with the command to pause it.
func (n notices) noisy(r store.NoisyRule) []store.OutboxItem {
	if n.cfg.AlertChannel == "" {
		return nil
	}
	text := fmt.Sprintf(":loudspeaker: securechat: regex %d (%s) looks noisy: %d of its %d leaks were reported *not a secret* by %d member(s). "+
		"Pause it while you refine it: `/securechat pause %d` or `securechat regex update %d --action monitor`. Its reports: `securechat leaks list --regex %d --reported any`.",
		r.RegexID, escape(detect.Shorten(r.Rule, 80)), r.Reports, r.Leaks, r.Reporters, r.RegexID, r.RegexID, r.RegexID)
	return []store.OutboxItem{{Kind: store.KindAlert, Payload: marshal(notice{Channel: n.cfg.AlertChannel, Text: text})}}
}

// undeletableMessage is the notice to the author of a direct message that
// Slack does not let securechat delete.
const undeletableMessage = "Your direct message in <#{channel}> contains what looks like a secret ({rule}: `{excerpt}`). " +
	"Slack does not let admins delete direct messages, so securechat could not remove it: delete it yourself, " +
	"and if it is a real credential or card, rotate or revoke it now."

// authorUndeletable builds the notice to the author of a leaking direct
// message that cannot be deleted for them.
func (n notices) authorUndeletable(msg store.Message, fs []store.Finding) []store.OutboxItem {
	if n.cfg.Author == "" || msg.User == "" || len(fs) == 0 {
		return nil
	}
	return []store.OutboxItem{{Kind: store.KindAuthor,
		Payload: marshal(notice{Channel: msg.Channel, User: msg.User, Mode: n.cfg.Author, Text: authorText(undeletableMessage, msg, fs)})}}
}

// alertFindings is how many findings an alert lists; the rest are counted.
// A Slack message holds 40,000 characters, and an alert must never fail as
// too long: hundreds of findings in one paste are possible.
const alertFindings = 5

// alertText is the alert channel's line for one leaking message.
func alertText(msg store.Message, fs []store.Finding, action, outcome, reason string) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("regex %d (%s) `%s`", f.RegexID, escape(detect.Shorten(f.Rule, 80)), escape(f.Excerpt)))
	}
	parts = dedupStrings(parts)
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
	rule := strings.Join(dedupStrings(rules), ", ")
	if rule == "" {
		rule = "regex " + strconv.FormatInt(fs[0].RegexID, 10)
	}
	return strings.NewReplacer("{rule}", escape(rule), "{excerpt}", escape(fs[0].Excerpt), "{channel}", msg.Channel, "{user}", msg.User).
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

// escape escapes &, < and > in text that goes into a Slack message, so
// that an excerpt or a description is shown as written, not read as markup.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
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

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// trialEnded builds the alert and webhook event of a rule whose trial ended.
func (n notices) trialEnded(r store.Regex) []store.OutboxItem {
	var out []store.OutboxItem
	desc := r.Description
	if desc == "" {
		desc = detect.Shorten(r.Pattern, 60)
	}
	if n.cfg.AlertChannel != "" {
		text := fmt.Sprintf(":alarm_clock: securechat: the trial of regex %d (%s) ended: it now deletes the messages it matches. "+
			"What it recorded during the trial: `securechat leaks list --regex %d`. To stop it: `securechat regex update %d --action monitor`.",
			r.ID, escape(detect.Shorten(desc, 80)), r.ID, r.ID)
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: marshal(notice{Channel: n.cfg.AlertChannel, Text: text})})
	}
	if n.cfg.WebhookURL != "" {
		now := n.now().UTC()
		body := map[string]any{"id": fmt.Sprintf("trial:%d:%d", r.ID, now.UnixMilli()), "event": "trial_ended",
			"regex_id": r.ID, "rule": desc, "action": store.ActionDelete, "time": now}
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: marshal(notice{Body: []byte(marshal(body))})})
	}
	return out
}

// digestExcerpts is how many masked excerpts a digest shows.
const digestExcerpts = 5

// digestText merges alerts into one message: how many, counts per rule, and
// the first few masked excerpts.
func digestText(items []notice) string {
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
				excerpts = append(excerpts, fmt.Sprintf("`%s` in <#%s>", escape(it.Excerpts[i]), it.Where))
			}
		}
	}
	slices.SortStableFunc(order, func(a, b string) int { return counts[b] - counts[a] })
	var per []string
	for _, r := range order[:min(len(order), 10)] {
		per = append(per, fmt.Sprintf("%s ×%d", escape(r), counts[r]))
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
