// Package scan decides each message: the scope, the current rule snapshot
// (Rules, reloaded when the rules change), the runaway-rule breaker, and the
// recording of a leak with its pending deletion and notices in one
// transaction before the envelope is acknowledged. The catch-up hands it
// messages from history through the same decision (FromHistory). Marks
// keeps the newest message handled per conversation, for the watermarks.
package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack/socketmode"

	"github.com/securechat/securechat/bot/message"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/notify"
	"github.com/securechat/securechat/store"
)

// Pipeline takes Socket Mode events from the socket to the store: read,
// decode, scope, decide, record, acknowledge. It is the only component that
// talks to the socket.
type Pipeline struct {
	Store         LeakRecorder
	Rules         *Rules
	Notes         notify.Notices
	Metrics       *metrics.Metrics
	Log           zerolog.Logger
	Scope         message.Filter
	ScanBots      bool
	Monitor       bool // the daemon's monitor mode: never delete
	RecordTimeout time.Duration
	Breaker       *Breaker // nil when off
	WakeDeleter   func()   // a deletion was queued
	WakeNotifier  func()   // a notification was queued
	Marks         *Marks   // newest handled message per conversation
}

// Handle processes one queued event. It always acknowledges, except when a
// leak could not be recorded: then Slack's redelivery is the retry.
func (p *Pipeline) Handle(ctx context.Context, sm *socketmode.Client, ev socketmode.Event) {
	switch ev.Type {
	case socketmode.EventTypeEventsAPI:
		if ev.Request == nil {
			return
		}
		p.process(ctx, sm, ev.Request.EnvelopeID, ev.Request.Payload, ev.Request.RetryAttempt)
	case socketmode.EventTypeErrorBadMessage:
		// slack-go could not decode the event (an unknown type, or a block it
		// does not know). Read the envelope ourselves: it may still be a
		// message to scan, and it must be acknowledged either way.
		bad, _ := ev.Data.(*socketmode.ErrorBadMessage)
		if bad == nil {
			return
		}
		var env struct {
			EnvelopeID   string          `json:"envelope_id"`
			Type         string          `json:"type"`
			Payload      json.RawMessage `json:"payload"`
			RetryAttempt int             `json:"retry_attempt"`
		}
		if err := json.Unmarshal(bad.Message, &env); err != nil || env.EnvelopeID == "" {
			p.Log.Warn().Int("bytes", len(bad.Message)).Msg("dropped an unreadable frame with no envelope id (nothing to acknowledge)")
			return
		}
		if env.Type == socketmode.RequestTypeEventsAPI {
			p.process(ctx, sm, env.EnvelopeID, env.Payload, env.RetryAttempt)
			return
		}
		p.ack(ctx, sm, env.EnvelopeID)
	default:
		if ev.Request != nil && ev.Request.EnvelopeID != "" {
			p.ack(ctx, sm, ev.Request.EnvelopeID) // slash commands, interactivity: not ours
		}
	}
}

func (p *Pipeline) process(ctx context.Context, sm *socketmode.Client, envelopeID string, payload []byte, retry int) {
	c, eventID, skip, err := message.Parse(payload, p.ScanBots)
	log := p.Log.With().Str("envelope_id", envelopeID).Str("event_id", eventID).Logger()
	if err != nil {
		log.Warn().Err(err).Msg("acknowledged and skipped a malformed event")
		p.Metrics.Events.WithLabelValues("malformed").Inc()
		p.ack(ctx, sm, envelopeID)
		return
	}
	err = p.decide(ctx, c, skip, log.With().Int("retry_attempt", retry).Logger(), func() { p.ack(ctx, sm, envelopeID) })
	if err != nil {
		p.Marks.Lost()
		return // not acknowledged: Slack's redelivery is the retry
	}
}

// FromHistory handles a message the history reader read (origin says which
// reader, for logs): the same scope, engine, deletion rule and
// de-duplication as a live event. It returns an error when a leak could
// not be recorded; the caller reads the message again later.
func (p *Pipeline) FromHistory(ctx context.Context, ev *message.Event, origin string) error {
	c, skip, err := message.FromEvent(ev, p.ScanBots)
	log := p.Log.With().Str("origin", origin).Logger()
	if err != nil {
		log.Warn().Err(err).Str("channel", ev.Channel).Str("ts", ev.TS).Msg("skipped a malformed message from history")
		p.Metrics.Events.WithLabelValues("malformed").Inc()
		return nil
	}
	return p.decide(ctx, c, skip, log, func() {})
}

// decide applies the scope to a message, scans it, and records a leak with
// its deletion and notices. durable is called as soon as the outcome is
// durable (the live path acknowledges then). It returns an error only when
// a leak could not be recorded.
func (p *Pipeline) decide(ctx context.Context, c message.Content, skip string, log zerolog.Logger, durable func()) error {
	if skip == "" {
		skip = p.Scope.Skip(c)
		if skip != "" {
			p.Metrics.Events.WithLabelValues("out_of_scope").Inc()
		}
	} else {
		p.Metrics.Events.WithLabelValues("skipped").Inc()
	}
	if skip != "" {
		log.Trace().Str("reason", skip).Msg("skipped event")
		durable()
		p.Marks.Handled(c.Channel, c.TS)
		return nil
	}
	start := time.Now()
	v := p.Rules.forEvent(ctx).Decide(c.Text, p.Monitor)
	p.Metrics.ScanSeconds.Observe(time.Since(start).Seconds())
	if p.Breaker != nil {
		p.Breaker.scanned()
	}
	if len(v.Findings) == 0 {
		outcome := "clean"
		if v.Allowlisted > 0 {
			outcome = "allowlisted"
			log.Info().Str("channel", c.Channel).Str("ts", c.TS).Int("values", v.Allowlisted).Msg("allowlisted value seen; not a leak")
		}
		p.Metrics.Events.WithLabelValues(outcome).Inc()
		durable()
		p.Marks.Handled(c.Channel, c.TS)
		return nil
	}
	msg := store.Message{Channel: c.Channel, User: c.User, TS: c.TS, Undeletable: p.undeletable(c)}
	// The notices for the findings as recorded: the breaker may turn some
	// to monitor inside the recording transaction.
	noted := false // notices were queued with the findings
	notesFor := func(fs []store.Finding, deleteMsg bool) []store.OutboxItem {
		var notes []store.OutboxItem
		switch {
		case !slices.ContainsFunc(fs, store.Finding.Deletes):
			notes = p.Notes.Outcome(msg, fs, store.ActionMonitor, "recorded (monitor: not deleted)", "")
		case msg.Undeletable:
			// Slack refuses chat.delete on another member's direct message
			// (cant_delete_message), whoever holds the token: record, tell
			// the author to delete it, and say so to the admins.
			notes = append(p.Notes.AuthorUndeletable(msg, fs),
				p.Notes.Outcome(msg, fs, store.ActionDelete, "not deleted: Slack does not let admins delete other members' direct messages", "")...)
		}
		noted = len(notes) > 0
		return notes
	}
	deleteMsg := v.Delete && !msg.Undeletable
	res, recorded, err := p.record(ctx, msg, v.Findings, deleteMsg, notesFor)
	if err == nil {
		v.Findings = recorded
		v.Delete = slices.ContainsFunc(recorded, store.Finding.Deletes)
		deleteMsg = v.Delete && !msg.Undeletable
	}
	if err != nil {
		p.Metrics.Events.WithLabelValues("record_failed").Inc()
		log.Error().Err(err).Str("channel", c.Channel).Str("ts", c.TS).
			Msg("could not record a leak; it is tried again (a live event is left unacknowledged for Slack to redeliver, a message from history is read again)")
		return err
	}
	durable()
	p.Marks.Handled(c.Channel, c.TS)
	outcome := "queued for deletion"
	switch {
	case res.NewLeaks == 0:
		outcome = "already recorded (seen before)"
		p.Metrics.Events.WithLabelValues("redelivered").Inc()
	case !v.Delete:
		outcome = "recorded (monitor: not deleted)"
	case !deleteMsg:
		outcome = "recorded (a direct message Slack does not let admins delete; author told)"
	case res.Requeued:
		outcome = "queued for deletion again: new findings after its deletion was " + res.Reopened
	case !res.NewDeletion:
		outcome = "added to the message's pending deletion"
	}
	if res.NewLeaks > 0 {
		p.Metrics.Events.WithLabelValues("leak").Inc()
		for _, f := range v.Findings {
			p.Metrics.Leaks.WithLabelValues(strconv.FormatInt(f.RegexID, 10), f.Action).Inc()
		}
	}
	for _, f := range v.Findings {
		log.Info().Str("channel", c.Channel).Str("channel_type", c.ChannelType).Str("ts", c.TS).Str("user", c.User).
			Str("subtype", c.Subtype).Int64("regex_id", f.RegexID).Str("rule", f.Rule).Str("excerpt", f.Excerpt).
			Str("action", f.Action).Str("outcome", outcome).Msg("leak detected")
	}
	if res.NewDeletion {
		p.WakeDeleter()
	}
	if res.NewLeaks > 0 && noted || res.Trips > 0 {
		p.WakeNotifier() // notices were queued with the leak, or a trip's alert
	}
	return nil
}

// undeletable reports whether Slack will refuse to delete the message (see
// store.Undeletable).
func (p *Pipeline) undeletable(c message.Content) bool {
	return store.Undeletable(c.ChannelType, c.Channel, c.User, p.Scope.Self)
}

// record stores a leak, retrying a busy database until recordTimeout has
// passed: Slack's ack deadline is 3 s, and an event left unacknowledged is
// sent again anyway. With the breaker on, the breaker is weighed in the
// recording transaction (store.RecordLeakWeighed), so that its limit holds
// exactly across this daemon's workers and every other daemon on the
// database. It returns the findings as recorded.
func (p *Pipeline) record(ctx context.Context, msg store.Message, fs []store.Finding, deleteMsg bool,
	notes func([]store.Finding, bool) []store.OutboxItem) (store.RecordResult, []store.Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, p.RecordTimeout)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		var res store.RecordResult
		recorded := fs
		if p.Breaker != nil && deleteMsg {
			var trips []store.Trip
			res, recorded, trips, err = p.Store.RecordLeakWeighed(ctx, msg, fs, deleteMsg, p.Breaker.limits(), notes)
			if err == nil {
				p.Breaker.tripped(trips)
			}
		} else {
			res, err = p.Store.RecordLeak(ctx, msg, fs, deleteMsg, notes(fs, deleteMsg)...)
		}
		if err == nil {
			return res, recorded, nil
		}
		select {
		case <-ctx.Done():
			return store.RecordResult{}, nil, fmt.Errorf("not durable within %s: %w", p.RecordTimeout, err)
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
}

func (p *Pipeline) ack(ctx context.Context, sm *socketmode.Client, envelopeID string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := sm.AckCtx(ctx, envelopeID, nil); err != nil {
		p.Log.Warn().Err(err).Str("envelope_id", envelopeID).Msg("could not acknowledge; Slack will redeliver (harmless: leaks are deduplicated)")
		return
	}
	p.Metrics.Acks.Inc()
}
