// Package socket reads Slack's Socket Mode connections: it keeps count of
// the connections that are up (State), and routes each envelope by its
// type: message events to the scanning queue, and what a person waits on
// (interactions, /securechat, the Home tab) to a small queue of its own
// that is never behind the scanning. The handlers of both queues are the
// daemon's; this package knows none of them.
package socket

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/slackapi"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// Reader reads one connection's events and routes them. Its fields are
// set by the daemon.
type Reader struct {
	Log     zerolog.Logger
	Metrics *metrics.Metrics
	State   *State
	// Lost says an event sent to this daemon may never be handled here
	// (left unacknowledged, or on a connection that dropped): progress
	// marks are no longer exact.
	Lost func()
	// Connected and Disconnected, when set, are called when the first
	// connection comes up and when the last one goes down.
	Connected, Disconnected func()
	// ExpectConns is how many connections the app should have: this
	// daemon's, times the replicas sharing its database.
	ExpectConns func() int
	Ghosts      zerolog.Logger // sampled
}

// enqueueWait is how long the reader waits for room in a full queue before
// it leaves an event unacknowledged.
const enqueueWait = 50 * time.Millisecond

// read takes events from the socket client and hands the ones that need
// work to the queue. It never blocks on a full queue for more than
// enqueueWait: a reader that stopped
// reading would stop slack-go from answering Slack's pings, the connection
// would drop, and acks for the queued events would go out on a dead socket.
// An event that finds the queue full is left unacknowledged and counted
// (securechat_events_unqueued_total): Slack sends it again at once, after 1
// minute and after 5 minutes. It returns a *TokenError when Slack refuses
// the app token, and nil when ctx ends.
func (p *Reader) Read(ctx context.Context, socket int, sm *socketmode.Client, queue, priority chan<- Envelope) error {
	full := p.Log.Sample(&zerolog.BurstSampler{Burst: 3, Period: 10 * time.Second})
	log := p.Log.With().Int("socket", socket).Logger()
	up := false // this connection
	defer func() {
		if up && p.State.Closed() && p.Disconnected != nil {
			p.Disconnected()
		}
	}()
	for {
		var ev socketmode.Event
		select {
		case <-ctx.Done():
			return nil
		case ev = <-sm.Events:
		}
		switch ev.Type {
		case socketmode.EventTypeConnecting:
			if ce, ok := ev.Data.(*slack.ConnectingEvent); ok && (ce.ConnectionCount > 0 || ce.Attempt > 1) {
				log.Info().Int("attempt", ce.Attempt).Msg("reconnecting to Slack")
			}
			if up {
				// Events sent to this connection and not acknowledged come
				// again as Slack's retries (on another connection), or
				// never: the watermarks are no longer exact.
				p.Lost()
				up = false
				if p.State.Closed() && p.Disconnected != nil {
					p.Disconnected() // the last one: unreachable from now
				}
			}
			continue
		case socketmode.EventTypeConnectionError:
			ce, _ := ev.Data.(*slack.ConnectionErrorEvent)
			if ce != nil {
				if err := slackapi.AppTokenError(ce.ErrorObj); slackapi.IsTokenError(err) {
					return err
				}
				p.Metrics.SlackErrors.WithLabelValues("apps.connections.open", slackapi.ErrCode(ce.ErrorObj)).Inc()
				p.Log.Warn().Err(ce.ErrorObj).Dur("retry_in", ce.Backoff).Msg("cannot connect to Slack; retrying")
			}
			continue
		case socketmode.EventTypeInvalidAuth:
			return &slackapi.TokenError{Env: "SLACK_APP_TOKEN", Code: "invalid_auth", Hint: slackapi.AppTokenHint}
		case socketmode.EventTypeConnected:
			if !up {
				up = true
				if p.State.Opened() && p.Connected != nil {
					p.Connected() // the first one: reachable again
				}
			}
			if ce, ok := ev.Data.(*socketmode.ConnectedEvent); ok {
				if ce.ConnectionCount > 0 {
					p.Metrics.Reconnects.Inc()
				}
				log.Info().Int("connection", ce.ConnectionCount).Msg("connected to Slack over Socket Mode")
			}
			continue
		case socketmode.EventTypeHello:
			if ev.Request != nil {
				p.hello(log, ev.Request.NumConnections)
			}
			continue
		case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorWriteFailed:
			p.Log.Warn().Str("event", string(ev.Type)).Msg("socket mode connection trouble; slack-go reconnects by itself")
			continue
		}
		// The router: people waiting on an answer (buttons, modals,
		// /securechat, the Home tab) go to their own small pool, never
		// behind the scan queue: Slack does not send them again, and shows
		// the user an error after 3 s.
		if RouteOf(ev) == RoutePeople {
			select {
			case priority <- Envelope{SM: sm, Ev: ev}:
			default:
				p.Metrics.Unqueued.Inc()
				p.Log.Warn().Str("event", string(ev.Type)).Msg("every interaction worker is busy: answered an interaction with 'busy'")
				go p.ackBusy(ctx, sm, ev)
			}
			continue
		}
		select {
		case queue <- Envelope{SM: sm, Ev: ev}:
			continue
		default:
		}
		// Full: a burst may drain in a moment, so wait a little (well short
		// of anything that would stall the socket), then let it go.
		t := time.NewTimer(enqueueWait)
		select {
		case queue <- Envelope{SM: sm, Ev: ev}:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
			p.Metrics.Unqueued.Inc()
			p.Lost()
			id := ""
			if ev.Request != nil {
				id = ev.Request.EnvelopeID
			}
			full.Warn().Str("envelope_id", id).Int("queue_size", cap(queue)).
				Msg("every worker is busy and the queue is full: left an event unacknowledged, Slack sends it again")
		}
	}
}

// Routes of an envelope.
const (
	RouteScan   = iota // a message event to scan (and anything else: acknowledged there)
	RoutePeople        // an interaction, a slash command, the Home tab: the priority pool
)

// RouteOf says where an envelope goes, by its type (and, for Events API
// envelopes, the inner event's type).
func RouteOf(ev socketmode.Event) int {
	switch ev.Type {
	case socketmode.EventTypeInteractive, socketmode.EventTypeSlashCommand:
		return RoutePeople
	case socketmode.EventTypeEventsAPI:
		if e, ok := ev.Data.(slackevents.EventsAPIEvent); ok && e.InnerEvent.Type == "app_home_opened" {
			return RoutePeople
		}
	case socketmode.EventTypeErrorBadMessage:
		// slack-go could not decode it: an interaction or command must
		// still be answered (or at least acknowledged) from the pool.
		if bad, ok := ev.Data.(*socketmode.ErrorBadMessage); ok {
			var env struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(bad.Message, &env) == nil &&
				(env.Type == socketmode.RequestTypeInteractive || env.Type == socketmode.RequestTypeSlashCommands) {
				return RoutePeople
			}
		}
	}
	return RouteScan
}

// ackBusy answers an interaction the pool has no room for.
func (p *Reader) ackBusy(ctx context.Context, sm *socketmode.Client, ev socketmode.Event) {
	if ev.Request == nil || ev.Request.EnvelopeID == "" {
		return
	}
	var payload any
	if ev.Type == socketmode.EventTypeSlashCommand {
		payload = map[string]any{"response_type": "ephemeral", "text": "securechat is busy right now; please try again in a few seconds."}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = sm.AckCtx(ctx, ev.Request.EnvelopeID, payload)
}

// Envelope is an event with the connection it came on, which acknowledges it.
type Envelope struct {
	SM *socketmode.Client
	Ev socketmode.Event
}

// hello notes how many connections Slack counts for the app, and warns when
// it is more than securechat opened: connections left half-open (a NAT that
// dropped them silently) count against Slack's 10 until Slack notices, and
// once the 10 are taken no new connection is accepted.
func (p *Reader) hello(log zerolog.Logger, n int) {
	p.Metrics.SlackConnections.Set(float64(n))
	if want := p.ExpectConns(); n > want {
		p.Ghosts.Warn().Int("slack_counts", n).Int("opened", want).
			Msg("Slack counts more Socket Mode connections for this app than securechat opened (ghost connections, or another program using the app token); at 10 Slack refuses new ones: look for other copies of securechat or programs with this app token")
	}
}

// State is how many of this daemon's Socket Mode connections are up,
// for /readyz, the securechat_connected gauge and the catch-up. Each
// connection's reader reports its own transitions.
type State struct {
	n      atomic.Int32
	downAt atomic.Int64 // unix ms when the last connection went down (0: never up, or up now)
	gauge  interface{ Set(float64) }
}

// IsUp reports whether at least one connection is up.
func (c *State) IsUp() bool { return c.n.Load() > 0 }

// LastUp is when a connection was last up: now while one is, else when the
// last one went down (zero when none ever was).
func (c *State) LastUp(now time.Time) time.Time {
	if c.IsUp() {
		return now
	}
	if ms := c.downAt.Load(); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// Opened records a connection that came up and reports whether it is the
// only one up (the daemon was unreachable until now).
func (c *State) Opened() bool {
	n := c.n.Add(1)
	c.gauge.Set(float64(n))
	return n == 1
}

// Closed records a connection that went down and reports whether it was
// the last one up (the daemon is unreachable from now).
func (c *State) Closed() bool {
	n := c.n.Add(-1)
	if n < 0 {
		c.n.Store(0)
		n = 0
	}
	if n == 0 {
		c.downAt.Store(time.Now().UnixMilli())
	}
	c.gauge.Set(float64(n))
	return n == 0
}

// Set is for tests and for the end of Run: all down, or one up.
func (c *State) Set(up bool) {
	if up {
		c.n.Store(0)
		c.Opened()
		return
	}
	if c.IsUp() {
		c.n.Store(1)
		c.Closed()
	}
}

// Count is how many connections are up.
func (c *State) Count() int { return int(c.n.Load()) }

// NewState returns a State that reports to gauge.
func NewState(gauge interface{ Set(float64) }) *State { return &State{gauge: gauge} }
