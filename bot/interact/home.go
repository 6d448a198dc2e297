package interact

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/service"
)

// memberHome is the Home tab for members who are not admins.
const memberHome = "*securechat keeps secrets out of this workspace.*\n" +
	"When a message contains what looks like a credential (a card number, a cloud key, a token, a private key), securechat removes it and tells its author, visible to them only. " +
	"Treat such a secret as exposed: rotate or revoke it.\n\n" +
	"*Removed by mistake?* Press *Not a secret* on securechat's notice (you can say why); the admins decide whether to allow the value. " +
	"Press *I've rotated it* once you have replaced the secret.\n\n" +
	"Type `/securechat help` for the commands."

// AppHome publishes the Home tab for the member who opened it (the
// app_home_opened event's payload): the admins' dashboard for admins, a
// short page for everyone else.
func (h *Handler) AppHome(ctx context.Context, payload []byte) {
	var cb struct {
		Event struct {
			Type string `json:"type"`
			User string `json:"user"`
			Tab  string `json:"tab"`
		} `json:"event"`
	}
	if err := json.Unmarshal(payload, &cb); err != nil || cb.Event.User == "" {
		h.o.Log.Warn().Err(err).Msg("an app_home_opened event without a user; nothing published")
		return
	}
	if cb.Event.Tab != "" && cb.Event.Tab != "home" {
		return // the Messages tab
	}
	if h.o.Poster == nil {
		return
	}
	log := h.o.Log.With().Str("user", cb.Event.User).Logger()
	var js json.RawMessage
	if h.o.Service.IsAdmin(service.SlackUser(cb.Event.User)) {
		var err error
		if js, err = h.adminHome(ctx); err != nil {
			log.Warn().Err(err).Msg("could not build the admins' Home tab")
			js = raw(section("securechat could not read its database just now; open the Home tab again in a minute."))
		}
	} else {
		js = raw(section(memberHome))
	}
	view := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: *SlackBlocks(js), CallbackID: "securechat_home"}
	if _, err := h.o.Poster.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: cb.Event.User, View: view}); err != nil {
		log.Warn().Err(err).Msg("could not publish the Home tab")
	}
}

// adminHome is the admins' dashboard: health, the rules with their noise
// (noisiest first), the last leaks (masked), and the queued deletions.
func (h *Handler) adminHome(ctx context.Context) (json.RawMessage, error) {
	st, err := h.o.Service.Status(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := h.o.Service.Rules(ctx)
	if err != nil {
		return nil, err
	}
	recent, err := h.o.Service.RecentLeaks(ctx, 10)
	if err != nil {
		return nil, err
	}
	held, pending, err := h.o.Service.Queued(ctx, 5)
	if err != nil {
		return nil, err
	}
	bs := []any{
		map[string]any{"type": "header", "text": plain("securechat")},
		section(statusText(h.o.Health(), st, h.o.Now())),
		map[string]any{"type": "divider"},
	}
	if len(rs) == 0 {
		bs = append(bs, section("*Rules*: none yet (`securechat regex add`)."))
	} else {
		bs = append(bs, section(detect.Shorten(rulesText(rs), 2900)))
	}
	bs = append(bs, map[string]any{"type": "divider"})
	var lines []string
	for _, l := range recent {
		line := fmt.Sprintf("• leak %d: regex %d `%s` in <#%s> by <@%s>, %s, %s", l.ID, l.RegexID, escape(l.Excerpt), l.Channel, l.User,
			l.DetectedAt.UTC().Format("Jan 2 15:04"), l.Status)
		if l.Report != "" {
			kind, status, _ := strings.Cut(l.Report, " ")
			line += fmt.Sprintf(" (reported %s, %s)", reportWords(kind), status)
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		lines = []string{"none yet"}
	}
	bs = append(bs, section(detect.Shorten("*Last leaks* (masked):\n"+strings.Join(lines, "\n"), 2900)))
	var q []string
	for _, l := range held {
		q = append(q, fmt.Sprintf("• held: leak %d in <#%s> (%s)", l.ID, l.Channel, escape(l.HoldReason)))
	}
	for _, l := range pending {
		q = append(q, fmt.Sprintf("• pending: leak %d in <#%s> (%d attempts)", l.ID, l.Channel, l.Attempts))
	}
	if len(q) == 0 {
		q = []string{"nothing waiting"}
	}
	bs = append(bs, section(detect.Shorten(fmt.Sprintf("*Deletions waiting* (%d held, %d pending):\n", st.Deletions["held"], st.Deletions["pending"])+strings.Join(q, "\n"), 2900)),
		contextBlock("", "Act on one: `securechat leaks resume ID` or `securechat leaks cancel ID`; a rule: `/securechat pause ID`."))
	return raw(bs...), nil
}
