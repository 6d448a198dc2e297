// Package interact answers people in Slack: the buttons of the author
// notice ("Not a secret", "I've rotated it") and of the admin alert
// ("Allow this value", "Pause rule", "Keep deleted"), the "Not a secret"
// modal, the /securechat command and the App Home tab. Every change goes
// through package service, which checks the admin list, makes each change
// once and audits it; this package only reads Slack's payloads and
// answers: an ack (with a payload for slash commands), the message's
// response_url, chat.update of the alert, views.open and views.publish.
//
// It never talks to the socket: the daemon's router hands it the
// envelopes of type interactive and slash_commands and the app_home_opened
// events, on a small pool of its own, and acknowledges with what it
// returns.
package interact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/service"
	"github.com/securechat/securechat/store"
)

// Poster is the part of the bot token's Web API client the handlers use.
type Poster interface {
	OpenViewContext(ctx context.Context, triggerID string, view slack.ModalViewRequest) (*slack.ViewResponse, error)
	PublishViewContext(ctx context.Context, req slack.PublishViewContextRequest) (*slack.ViewResponse, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
}

// Health is what the daemon knows of itself, for status and App Home.
type Health struct {
	Connections int  // Socket Mode connections up in this daemon
	Leader      bool // this daemon runs the singleton jobs
	Mode        string
}

// Options are a Handler's dependencies.
type Options struct {
	Service *service.Service
	// Poster is the bot token's client; nil when there is no bot token
	// (then nothing here is reachable: Slack sends no interaction).
	Poster Poster
	HTTP   *http.Client // for response_url
	Log    zerolog.Logger
	Now    func() time.Time
	// ReportNotes builds the admins' notifications of a member's report.
	ReportNotes func(ls []store.Leak, reporter, kind, reason string) []store.OutboxItem
	// Noise flags a rule whose reports pass the threshold.
	Noise store.Noise
	// Mask hides the secrets the rules find in text a member typed (a
	// report's reason) before it is stored or shown; nil keeps it as typed.
	Mask func(string) string
	// Wake tells the notifier that notifications were queued.
	Wake func()
	// Health reports the daemon's own state.
	Health func() Health
	// Budget is how long a slash command may take before its ack says
	// "working on it" and the answer follows by response_url [2s]: Slack
	// shows an error to the user after 3 s.
	Budget time.Duration
}

// Handler answers interactions.
type Handler struct{ o Options }

// New returns a Handler.
func New(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Budget <= 0 {
		o.Budget = 2 * time.Second
	}
	if o.Wake == nil {
		o.Wake = func() {}
	}
	if o.Health == nil {
		o.Health = func() Health { return Health{} }
	}
	return &Handler{o: o}
}

// payload is the part of an interactive payload securechat reads
// (block_actions and view_submission, as docs.slack.dev documents them).
type payload struct {
	Type      string              `json:"type"`
	User      struct{ ID string } `json:"user"`
	TriggerID string              `json:"trigger_id"`
	Container struct {
		Type        string `json:"type"`
		MessageTS   string `json:"message_ts"`
		ChannelID   string `json:"channel_id"`
		IsEphemeral bool   `json:"is_ephemeral"`
	} `json:"container"`
	Channel     struct{ ID string } `json:"channel"`
	ResponseURL string              `json:"response_url"`
	Message     *struct {
		TS     string            `json:"ts"`
		Text   string            `json:"text"`
		Blocks []json.RawMessage `json:"blocks"`
	} `json:"message"`
	Actions []struct {
		ActionID string `json:"action_id"`
		Value    string `json:"value"`
	} `json:"actions"`
	View struct {
		CallbackID      string `json:"callback_id"`
		PrivateMetadata string `json:"private_metadata"`
		State           struct {
			Values map[string]map[string]struct {
				Value string `json:"value"`
			} `json:"values"`
		} `json:"state"`
	} `json:"view"`
}

// Interactive handles the payload of an "interactive" envelope. It calls
// ack exactly once, as soon as it may (before slow work), with nil or a
// response payload.
func (h *Handler) Interactive(ctx context.Context, raw []byte, ack func(any)) {
	var p payload
	if err := json.Unmarshal(raw, &p); err != nil {
		ack(nil)
		h.o.Log.Warn().Err(err).Int("bytes", len(raw)).Msg("acknowledged an interaction whose payload is not valid JSON; nothing done")
		return
	}
	log := h.o.Log.With().Str("type", p.Type).Str("user", p.User.ID).Logger()
	switch p.Type {
	case "block_actions":
		if len(p.Actions) == 0 {
			ack(nil)
			return
		}
		a := p.Actions[0]
		log = log.With().Str("action", a.ActionID).Logger()
		switch a.ActionID {
		case ActionNotSecret:
			h.notSecret(ctx, p, a.Value, ack, log)
		case ActionRotated:
			ack(nil)
			h.report(ctx, p.User.ID, a.Value, store.ReportRotated, "", p.ResponseURL, noticeText(p), log)
		case ActionAllow, ActionPause, ActionKeep:
			ack(nil)
			h.adminAction(ctx, p, a.ActionID, a.Value, log)
		default:
			ack(nil)
			log.Debug().Msg("ignored an action that is not securechat's")
		}
	case "view_submission":
		if p.View.CallbackID != CallbackReport {
			ack(nil)
			return
		}
		ack(nil) // closes the modal
		var md reportMeta
		if err := json.Unmarshal([]byte(p.View.PrivateMetadata), &md); err != nil {
			log.Warn().Err(err).Msg("a report's modal came back without its metadata; nothing recorded")
			return
		}
		reason := p.View.State.Values[reasonBlock][reasonInput].Value
		h.report(ctx, p.User.ID, md.Ref, store.ReportNotSecret, reason, md.ResponseURL, md.Notice, log)
	default:
		ack(nil)
		log.Debug().Msg("ignored an interaction securechat does not use")
	}
}

// reportMeta travels in the modal's private_metadata (3,000 characters).
type reportMeta struct {
	Ref         string `json:"ref"`
	ResponseURL string `json:"url"`
	Notice      string `json:"notice"`
}

// noticeText is the text of the message a button was on, when Slack sent
// it (not for ephemeral messages).
func noticeText(p payload) string {
	if p.Message != nil {
		return p.Message.Text
	}
	return ""
}

// notSecret opens the modal that asks for an optional reason; the report
// is recorded when it is submitted. If the modal cannot open (the trigger
// expired), the report is recorded without a reason.
func (h *Handler) notSecret(ctx context.Context, p payload, ref string, ack func(any), log zerolog.Logger) {
	channel, ts, _, err := parseRef(ref)
	if err != nil {
		ack(nil)
		log.Warn().Err(err).Msg("a report button carried a bad reference")
		return
	}
	ls, err := h.o.Service.MessageLeaks(ctx, channel, ts)
	if err != nil {
		ack(nil)
		h.ephemeral(ctx, p.ResponseURL, "securechat could not read its records just now; please try again in a minute.", log)
		log.Warn().Err(err).Msg("could not read a message's leaks for a report")
		return
	}
	if msg := h.cannotReport(ls, p.User.ID); msg != "" {
		ack(nil)
		h.ephemeral(ctx, p.ResponseURL, msg, log)
		return
	}
	md, _ := json.Marshal(reportMeta{Ref: ref, ResponseURL: p.ResponseURL, Notice: detect.Shorten(noticeText(p), 1500)})
	view := slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      CallbackReport,
		Title:           slack.NewTextBlockObject(slack.PlainTextType, "Not a secret", false, false),
		Submit:          slack.NewTextBlockObject(slack.PlainTextType, "Send to admins", false, false),
		Close:           slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false),
		PrivateMetadata: string(md),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType,
				"Tell securechat's admins why this is not a secret (a test card, a sample key…). They decide whether to allow the value; your message stays removed meanwhile.", false, false), nil, nil),
			&slack.InputBlock{Type: slack.MBTInput, BlockID: reasonBlock, Optional: true,
				Label: slack.NewTextBlockObject(slack.PlainTextType, "Why (optional)", false, false),
				Element: &slack.PlainTextInputBlockElement{Type: slack.METPlainTextInput, ActionID: reasonInput, Multiline: true,
					MaxLength: 500}},
		}},
	}
	if h.o.Poster != nil {
		if _, err := h.o.Poster.OpenViewContext(ctx, p.TriggerID, view); err == nil {
			ack(nil)
			return
		} else {
			log.Info().Err(err).Msg("could not open the report modal; recording the report without a reason")
		}
	}
	ack(nil)
	h.report(ctx, p.User.ID, ref, store.ReportNotSecret, "", p.ResponseURL, noticeText(p), log)
}

// cannotReport says why user cannot report a message with these leaks
// ("" when they can).
func (h *Handler) cannotReport(ls []store.Leak, user string) string {
	if len(ls) == 0 {
		return "securechat has no record of that message any more; nothing to report."
	}
	for _, l := range ls {
		if l.User == user {
			if l.Report != "" {
				kind, _, _ := strings.Cut(l.Report, " ")
				return fmt.Sprintf("You reported this message already (%s); the admins have it.", reportWords(kind))
			}
			return ""
		}
	}
	return "Only the author of the message can report it."
}

func reportWords(kind string) string {
	if kind == store.ReportRotated {
		return "rotated"
	}
	return "not a secret"
}

// report records a member's report, then updates their notice.
func (h *Handler) report(ctx context.Context, user, ref, kind, reason, responseURL, notice string, log zerolog.Logger) {
	channel, ts, _, err := parseRef(ref)
	if err != nil {
		log.Warn().Err(err).Msg("a report carried a bad reference")
		return
	}
	if h.o.Mask != nil && reason != "" {
		reason = h.o.Mask(reason)
	}
	notes := func(ls []store.Leak) []store.OutboxItem {
		if h.o.ReportNotes == nil {
			return nil
		}
		return h.o.ReportNotes(ls, user, kind, reason)
	}
	res, err := h.o.Service.Report(ctx, store.ReportInput{Channel: channel, TS: ts, User: user, Kind: kind, Reason: reason}, notes, h.o.Noise)
	switch {
	case errors.Is(err, store.ErrNotAuthor):
		h.ephemeral(ctx, responseURL, "Only the author of the message can report it.", log)
		return
	case errors.Is(err, store.ErrNotFound):
		h.ephemeral(ctx, responseURL, "securechat has no record of that message any more; nothing to report.", log)
		return
	case err != nil:
		log.Error().Err(err).Msg("could not record a report")
		h.ephemeral(ctx, responseURL, "securechat could not record your report just now; please press the button again in a minute.", log)
		return
	case res.Recorded == 0:
		h.ephemeral(ctx, responseURL, fmt.Sprintf("You reported this message already (%s); the admins have it.", reportWords(res.Earlier)), log)
		return
	}
	h.o.Wake()
	log.Info().Str("channel", channel).Str("ts", ts).Str("kind", kind).Int("leaks", res.Recorded).Msg("a member reported a leak")
	thanks := ":white_check_mark: Thanks: your report that this is *not a secret* went to securechat's admins. They decide whether to allow the value; the message stays removed meanwhile."
	if kind == store.ReportRotated {
		thanks = ":white_check_mark: Thanks: securechat recorded that you rotated it."
	}
	if notice == "" {
		notice = "Your message was removed by securechat because it contained what looks like a secret."
	}
	h.respond(ctx, responseURL, &slack.WebhookMessage{ReplaceOriginal: true, Text: notice + "\n" + thanks,
		Blocks: SlackBlocks(raw(section(notice), contextBlock(outcomeBlock, thanks)))}, log)
}

// adminAction runs an alert button for an admin and updates the alert.
func (h *Handler) adminAction(ctx context.Context, p payload, action, value string, log zerolog.Logger) {
	actor := service.SlackUser(p.User.ID)
	if !h.o.Service.IsAdmin(actor) {
		log.Warn().Msg("refused an alert button pressed by a member who is not on [slack] admins")
		h.ephemeral(ctx, p.ResponseURL, "Only securechat's admins can do this (the [slack] admins list); nothing was changed.", log)
		return
	}
	var line string
	var err error
	switch action {
	case ActionPause:
		line, err = h.pause(ctx, actor, value)
	case ActionAllow:
		line, err = h.allow(ctx, actor, value)
	case ActionKeep:
		line, err = h.keep(ctx, actor, value)
	}
	if err != nil {
		log.Info().Err(err).Msg("an alert button changed nothing")
		h.ephemeral(ctx, p.ResponseURL, err.Error(), log)
		return
	}
	log.Info().Str("value", value).Msg("an alert button changed something")
	h.updateAlert(ctx, p, line, log)
}

// already is the answer to an action someone made before.
type already struct{ what, by string }

func (a already) Error() string {
	if a.by == "" {
		return a.what + " already; nothing was changed."
	}
	return a.what + " already, by " + who(a.by) + "; nothing was changed."
}

// who renders an actor for Slack: a mention for Slack users.
func who(actor string) string {
	if id, ok := strings.CutPrefix(actor, "slack:"); ok {
		return "<@" + id + ">"
	}
	return "`" + actor + "`"
}

func (h *Handler) when() string { return h.o.Now().UTC().Format("2006-01-02 15:04 UTC") }

func (h *Handler) pause(ctx context.Context, a service.Actor, value string) (string, error) {
	id, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return "", fmt.Errorf("This button names no rule securechat can read (%q); nothing was changed.", value)
	}
	c, err := h.o.Service.PauseRule(ctx, a, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("Regex %d does not exist (removed since this alert, or a mistyped id); nothing was changed.", id)
	}
	if err != nil {
		return "", fmt.Errorf("securechat could not pause regex %d just now (%v); try again, or run 'securechat regex update %d --action monitor'", id, err, id)
	}
	if !c.Done {
		return "", already{fmt.Sprintf("Regex %d is paused (monitor)", id), c.By}
	}
	line := fmt.Sprintf(":double_vertical_bar: Regex %d%s paused (records and alerts, deletes nothing) by %s at %s", id, h.ruleName(ctx, id), who(a.String()), h.when())
	if c.Cancelled > 0 {
		line += fmt.Sprintf("; %d queued deletion(s) only it justified were cancelled", c.Cancelled)
	}
	return line + fmt.Sprintf(". Undo: `/securechat resume %d`.", id), nil
}

func (h *Handler) leakOf(ctx context.Context, value string) (store.Leak, error) {
	channel, ts, regexID, err := parseRef(value)
	if err != nil {
		return store.Leak{}, err
	}
	ls, err := h.o.Service.MessageLeaks(ctx, channel, ts)
	if err != nil {
		return store.Leak{}, fmt.Errorf("securechat could not read its records just now (%v); try again", err)
	}
	for _, l := range ls {
		if regexID == 0 || l.RegexID == regexID {
			return l, nil
		}
	}
	return store.Leak{}, errors.New("securechat has no record of that leak any more; nothing was changed.")
}

func (h *Handler) allow(ctx context.Context, a service.Actor, value string) (string, error) {
	l, err := h.leakOf(ctx, value)
	if err != nil {
		return "", err
	}
	v, c, err := h.o.Service.AllowLeak(ctx, a, l.ID, "allowed from Slack")
	switch {
	case errors.Is(err, store.ErrNoFingerprint):
		return "", fmt.Errorf("Leak %d was recorded while the daemon had no allowlist secret, so its value cannot be allowed; nothing was changed. "+
			"Set SECURECHAT_ALLOWLIST_SECRET (or [allowlist] secret) for the daemon: leaks recorded from then on can be allowed.", l.ID)
	case err != nil:
		return "", fmt.Errorf("securechat could not allow the value just now (%v); try again, or run 'securechat leaks allow %d'", err, l.ID)
	case !c.Done:
		return "", already{fmt.Sprintf("The value `%s` is allowed", v.Excerpt), c.By}
	}
	line := fmt.Sprintf(":white_check_mark: Value `%s` of regex %d allowed by %s at %s (allowlist entry %d): it no longer counts as a leak",
		v.Excerpt, v.RegexID, who(a.String()), h.when(), v.ID)
	if c.Closed > 0 {
		line += fmt.Sprintf("; %d report(s) closed", c.Closed)
	}
	return line + ". The removed message is not restored (securechat keeps only masked text).", nil
}

func (h *Handler) keep(ctx context.Context, a service.Actor, value string) (string, error) {
	l, err := h.leakOf(ctx, value)
	if err != nil {
		return "", err
	}
	c, err := h.o.Service.KeepDeleted(ctx, a, l.ID)
	switch {
	case err != nil:
		return "", fmt.Errorf("securechat could not close the report just now (%v); try again", err)
	case !c.Done:
		return "", already{"The reports about this message are closed", c.By}
	}
	return fmt.Sprintf(":lock: Kept deleted by %s at %s; %d report(s) closed.", who(a.String()), h.when(), c.Closed), nil
}

// updateAlert adds what an admin did to the alert, keeping its buttons
// (another action may still apply). Without the alert message (an
// ephemeral one), the admin is answered by response_url.
func (h *Handler) updateAlert(ctx context.Context, p payload, line string, log zerolog.Logger) {
	if p.Message == nil || h.o.Poster == nil || p.Container.ChannelID == "" {
		h.ephemeral(ctx, p.ResponseURL, line, log)
		return
	}
	outcome, _ := json.Marshal(contextBlock("", line))
	all, _ := json.Marshal(append(append([]json.RawMessage(nil), p.Message.Blocks...), outcome))
	text := p.Message.Text + "\n" + line
	_, _, _, err := h.o.Poster.UpdateMessageContext(ctx, p.Container.ChannelID, p.Container.MessageTS,
		slack.MsgOptionText(text, false), slack.MsgOptionBlocks(SlackBlocks(all).BlockSet...))
	if err != nil {
		log.Warn().Err(err).Msg("could not update the alert; telling the admin directly")
		h.ephemeral(ctx, p.ResponseURL, line, log)
	}
}

// ephemeral answers the one who acted, visible to them only.
func (h *Handler) ephemeral(ctx context.Context, responseURL, msg string, log zerolog.Logger) {
	h.respond(ctx, responseURL, &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, ReplaceOriginal: false, Text: msg}, log)
}

func (h *Handler) respond(ctx context.Context, responseURL string, m *slack.WebhookMessage, log zerolog.Logger) {
	if responseURL == "" {
		return
	}
	// Bounded, and given up at shutdown once the daemon abandons its work:
	// the change itself is already durable.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := slack.PostWebhookCustomHTTPContext(ctx, responseURL, h.o.HTTP, m); err != nil {
		log.Warn().Err(err).Msg("could not answer through the interaction's response_url")
	}
}

// ruleName is " (description)" of a rule, for answers that name it, so that
// a mistyped id shows; "" when it has none or cannot be read.
func (h *Handler) ruleName(ctx context.Context, id int64) string {
	r, err := h.o.Service.Rule(ctx, id)
	if err != nil || r.Description == "" {
		return ""
	}
	return " (" + escape(detect.Shorten(r.Description, 60)) + ")"
}
