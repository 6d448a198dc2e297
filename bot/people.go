package bot

import (
	"context"
	"encoding/json"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack/socketmode"

	"github.com/securechat/securechat/bot/interact"
)

// peopleWorkers is the size of the pool that answers people (buttons,
// modals, /securechat, the Home tab), and peopleQueue how many may wait
// for it. Interactions are rare next to messages; what matters is that
// they never wait behind a burst of messages to scan.
const (
	peopleWorkers = 2
	peopleQueue   = 64
)

// people answers the envelopes the router sends to the priority pool. h
// is nil without a bot user: then there are no buttons, and a
// /securechat typed anyway is told why.
type people struct {
	h       *interact.Handler
	log     zerolog.Logger
	metrics *Metrics
}

// handle answers one envelope and acknowledges it exactly once, with the
// handler's payload (a slash command's answer) or empty.
func (pp *people) handle(ctx context.Context, sm *socketmode.Client, ev socketmode.Event) {
	id, typ, payload := "", string(ev.Type), []byte(nil)
	if ev.Request != nil {
		id, payload = ev.Request.EnvelopeID, ev.Request.Payload
	}
	if bad, ok := ev.Data.(*socketmode.ErrorBadMessage); ok {
		var env struct {
			EnvelopeID string          `json:"envelope_id"`
			Type       string          `json:"type"`
			Payload    json.RawMessage `json:"payload"`
		}
		_ = json.Unmarshal(bad.Message, &env)
		id, typ, payload = env.EnvelopeID, env.Type, env.Payload
		pp.log.Warn().Str("type", typ).Str("envelope_id", id).Err(bad.Cause).Msg("an interaction slack-go could not read; acknowledged, nothing done")
		payload = nil // unreadable: only acknowledged
	}
	acked := false
	ack := func(p any) {
		if acked || id == "" {
			return
		}
		acked = true
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := sm.AckCtx(actx, id, p); err != nil {
			pp.log.Warn().Err(err).Str("envelope_id", id).Msg("could not acknowledge an interaction")
			return
		}
		pp.metrics.Acks.Inc()
	}
	defer ack(nil)
	pp.metrics.Interactions.WithLabelValues(typ).Inc()
	if payload == nil {
		return
	}
	if pp.h == nil {
		if typ == string(socketmode.EventTypeSlashCommand) {
			ack(map[string]any{"response_type": "ephemeral",
				"text": "securechat runs without its bot user (no bot token), so /securechat, buttons and the Home tab are off. An admin sets SLACK_BOT_TOKEN (see the README's app set-up)."})
		}
		return
	}
	switch typ {
	case string(socketmode.EventTypeInteractive):
		pp.h.Interactive(ctx, payload, ack)
	case string(socketmode.EventTypeSlashCommand):
		pp.h.Slash(ctx, payload, ack)
	case string(socketmode.EventTypeEventsAPI):
		ack(nil) // an event: acknowledged at once, the Home tab follows
		pp.h.AppHome(ctx, payload)
	}
}
