package interact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/service"
	"github.com/securechat/securechat/store"
)

// slashHelp is /securechat help.
const slashHelp = "*securechat* removes messages that contain secrets (cards, cloud keys, tokens, private keys) and tells their authors.\n" +
	"• `/securechat status`: is securechat running, and what is waiting\n" +
	"• `/securechat rules`: the rules, with their hits and false-positive reports (noisiest first)\n" +
	"• `/securechat pause ID`: a rule records and alerts but deletes nothing (admins)\n" +
	"• `/securechat resume ID`: a paused rule deletes again (admins)\n" +
	"• `/securechat allow LEAK_ID`: allow the value a leak matched (admins)\n" +
	"• `/securechat help`: this\n" +
	"A message of yours was removed by mistake? Press *Not a secret* on securechat's notice."

// slashCommand is the part of a slash command's payload securechat reads.
type slashCommand struct {
	UserID      string `json:"user_id"`
	Command     string `json:"command"`
	Text        string `json:"text"`
	ResponseURL string `json:"response_url"`
}

// Slash handles a "slash_commands" envelope. The answer is the ack's
// payload (ephemeral) when it is ready within the budget; otherwise the
// ack says it is on its way, and it follows by response_url.
func (h *Handler) Slash(ctx context.Context, raw []byte, ack func(any)) {
	var c slashCommand
	if err := json.Unmarshal(raw, &c); err != nil {
		ack(nil)
		h.o.Log.Warn().Err(err).Msg("acknowledged a slash command whose payload is not valid JSON; nothing done")
		return
	}
	log := h.o.Log.With().Str("command", c.Command).Str("user", c.UserID).Logger()
	answer := make(chan string, 1)
	go func() { answer <- h.command(ctx, c, log) }()
	t := time.NewTimer(h.o.Budget)
	defer t.Stop()
	select {
	case msg := <-answer:
		ack(ephemeralPayload(msg))
	case <-t.C:
		ack(ephemeralPayload("Working on it…"))
		msg := <-answer
		h.respond(ctx, c.ResponseURL, &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: msg}, log)
	}
}

func ephemeralPayload(msg string) map[string]any {
	return map[string]any{"response_type": slack.ResponseTypeEphemeral, "text": msg}
}

// command runs one /securechat command and returns its answer.
func (h *Handler) command(ctx context.Context, c slashCommand, log zerolog.Logger) string {
	args := strings.Fields(c.Text)
	if len(args) == 0 {
		return slashHelp
	}
	actor := service.SlackUser(c.UserID)
	verb := strings.ToLower(args[0])
	id := int64(0)
	switch verb {
	case "pause", "resume", "allow":
		if len(args) != 2 {
			return fmt.Sprintf("Usage: `/securechat %s ID`", verb)
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(args[1], "#"), 10, 64)
		if err != nil || n <= 0 {
			return fmt.Sprintf("%q is not an id: ids are positive numbers, as `/securechat rules` and the alerts show them.", args[1])
		}
		id = n
		if !h.o.Service.IsAdmin(actor) {
			log.Warn().Str("verb", verb).Msg("refused /securechat from a member who is not on [slack] admins")
			return "Only securechat's admins can do this (the [slack] admins list); nothing was changed."
		}
	}
	var msg string
	var err error
	switch verb {
	case "help":
		return slashHelp
	case "status":
		msg, err = h.status(ctx)
	case "rules":
		msg, err = h.rules(ctx)
	case "pause":
		msg, err = h.pause(ctx, actor, strconv.FormatInt(id, 10))
	case "resume":
		msg, err = h.resume(ctx, actor, id)
	case "allow":
		msg, err = h.allowLeak(ctx, actor, id)
	default:
		return fmt.Sprintf("Unknown command %q.\n%s", verb, slashHelp)
	}
	var done already
	if errors.As(err, &done) {
		return done.Error()
	}
	if err != nil {
		return err.Error()
	}
	if verb == "pause" || verb == "resume" || verb == "allow" {
		log.Info().Str("verb", verb).Int64("id", id).Msg("admin action from /securechat")
	}
	return msg
}

func (h *Handler) resume(ctx context.Context, a service.Actor, id int64) (string, error) {
	c, err := h.o.Service.ResumeRule(ctx, a, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("Regex %d does not exist; nothing was changed.", id)
	}
	if err != nil {
		return "", fmt.Errorf("securechat could not resume regex %d just now (%v); try again", id, err)
	}
	if !c.Done {
		return "", already{fmt.Sprintf("Regex %d deletes", id), c.By}
	}
	msg := fmt.Sprintf(":arrow_forward: Regex %d%s deletes matching messages again (by %s at %s).", id, h.ruleName(ctx, id), who(a.String()), h.when())
	if r, err := h.o.Service.Rule(ctx, id); err == nil && !r.Enabled {
		msg = fmt.Sprintf(":arrow_forward: Regex %d's action is delete again (by %s at %s), but the rule is *disabled*: it finds nothing until an admin runs `securechat regex enable %d`.",
			id, who(a.String()), h.when(), id)
	}
	if c.Held > 0 {
		msg += fmt.Sprintf(" %d deletion(s) it found stay held: review them with `securechat leaks list --regex %d --status held`, then `securechat leaks resume --rule %d`.", c.Held, id, id)
	}
	return msg, nil
}

func (h *Handler) allowLeak(ctx context.Context, a service.Actor, id int64) (string, error) {
	l, err := h.o.Service.Leak(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("There is no leak %d; nothing was changed.", id)
	}
	if err != nil {
		return "", fmt.Errorf("securechat could not read leak %d just now (%v); try again", id, err)
	}
	return h.allow(ctx, a, LeakRef(l.Channel, l.TS, l.RegexID))
}

func (h *Handler) status(ctx context.Context) (string, error) {
	st, err := h.o.Service.Status(ctx)
	if err != nil {
		return "", fmt.Errorf("securechat could not read its database just now (%v)", err)
	}
	return statusText(h.o.Health(), st, h.o.Now()), nil
}

func statusText(hl Health, st service.Status, now time.Time) string {
	var b strings.Builder
	mode := hl.Mode
	if mode == "" {
		mode = "enforce"
	}
	fmt.Fprintf(&b, "*securechat* is running in *%s* mode: %d Socket Mode connection(s) up here, %d daemon(s) alive", mode, hl.Connections, max(len(st.Daemons), 1))
	switch {
	case hl.Leader:
		b.WriteString(" (this one leads)")
	case st.Leader != "":
		fmt.Fprintf(&b, " (%s leads)", st.Leader)
	}
	fmt.Fprintf(&b, ".\nRules: %d enabled, %d deleting. ", st.Rules, st.Deleting)
	if st.LastLeak.IsZero() {
		b.WriteString("No leak recorded yet.")
	} else {
		fmt.Fprintf(&b, "Last leak: %s ago.", now.Sub(st.LastLeak).Round(time.Second))
	}
	fmt.Fprintf(&b, "\nDeletions: %d pending, %d held, %d failed. Reports waiting for an admin: %d. Notifications waiting: %d (%d failed).",
		st.Deletions[store.StatusPending], st.Deletions[store.StatusHeld], st.Deletions[store.StatusFailed], st.OpenReports, st.OutboxPending, st.OutboxFailed)
	return b.String()
}

// maxRulesShown bounds the rules /securechat rules and App Home list.
const maxRulesShown = 15

func (h *Handler) rules(ctx context.Context) (string, error) {
	rs, err := h.o.Service.Rules(ctx)
	if err != nil {
		return "", fmt.Errorf("securechat could not read its rules just now (%v)", err)
	}
	if len(rs) == 0 {
		return "No rules yet: an admin adds them with `securechat regex add`.", nil
	}
	return rulesText(rs), nil
}

func rulesText(rs []service.RuleView) string {
	var b strings.Builder
	b.WriteString("*Rules*, noisiest first (FP: the share of hits their authors reported *not a secret*):\n")
	for i, r := range rs {
		if i == maxRulesShown {
			fmt.Fprintf(&b, "…and %d more: `securechat regex list`.", len(rs)-i)
			break
		}
		desc := r.Description
		if desc == "" {
			desc = detect.Shorten(r.Pattern, 40)
		}
		state := r.Action
		if !r.Enabled {
			state = "disabled"
		}
		fmt.Fprintf(&b, "• *%d* %s (%s): %d hits, %d reports, FP %s\n", r.ID, escape(detect.Shorten(desc, 60)), state, r.Leaks, r.NotSecret, r.ShareText())
	}
	return b.String()
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
