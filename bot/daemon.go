// Package bot is securechat's daemon: it receives message events over Slack
// Socket Mode, scans them in a bounded worker pool with the current rule set,
// records leaks with their pending deletions, acknowledges each envelope once
// that is durable, and deletes the leaking messages from the durable queue.
package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

// Options configure a Daemon. Zero values take the defaults in brackets.
type Options struct {
	AppToken  string // xapp-…, opens the Socket Mode connection
	UserToken string // xoxp-…, deletes messages
	APIURL    string // Web API base URL [https://slack.com/api/]

	Workers         int           // scanning goroutines [4]
	QueueSize       int           // events waiting for a worker [1024]
	ReloadInterval  time.Duration // how often to look for rule changes [1s]
	ShutdownTimeout time.Duration // how long to finish in-flight events at shutdown [5s]
	RetryMax        time.Duration // longest wait between deletion attempts [5m]
	ScanBots        bool          // scan bot_message and app posts too

	// PingInterval is how long the connection may go without a ping from
	// Slack before it is considered dead [30s, slack-go's default].
	PingInterval time.Duration
	// HTTPClient is used for Web API calls and webhooks [a client with a 30s timeout].
	HTTPClient *http.Client
	// Now is the clock [time.Now].
	Now func() time.Time

	// Mode is "enforce" (each rule's action) [default] or "monitor" (record
	// and alert, never delete).
	Mode string
	// Scope limits what is scanned.
	Scope Scope
	// Notify says who hears about a leak.
	Notify Notify
	// AllowlistKey keys the value fingerprints that 'leaks allow' uses; nil
	// records no fingerprints.
	AllowlistKey []byte
	// Metrics collects the daemon's metrics [a new set].
	Metrics *Metrics
	// MetricsListener, when set, serves /metrics, /healthz and /readyz.
	MetricsListener net.Listener
}

// Scope says which messages are scanned. Empty lists mean no restriction.
type Scope struct {
	Channels        []string // only these channel ids
	ExcludeChannels []string // never these
	Types           []string // channel_type values: channel, group, im, mpim
	ExemptUsers     []string // never messages by these user ids
}

// Notify configures notifications. Empty fields turn a kind off.
type Notify struct {
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
}

func (o *Options) setDefaults() {
	if o.APIURL == "" {
		o.APIURL = "https://slack.com/api/"
	}
	if !strings.HasSuffix(o.APIURL, "/") {
		o.APIURL += "/"
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 5 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Mode == "" {
		o.Mode = ModeEnforce
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Notify.Author == "off" {
		o.Notify.Author = ""
	}
	if o.Notify.AuthorMessage == "" {
		o.Notify.AuthorMessage = "Your message in <#{channel}> was removed because it contained what looks like a secret ({rule}: `{excerpt}`). Rotate it if it is real."
	}
}

// Modes.
const (
	ModeEnforce = "enforce"
	ModeMonitor = "monitor"
)

// Daemon is a running securechat bot. Create it with New and start it with Run.
type Daemon struct {
	opts    Options
	store   *store.Store
	log     zerolog.Logger
	api     *slack.Client // user token: events, chat.delete
	poster  *slack.Client // notices and alerts: the bot token's client, or api
	metrics *Metrics
	scope   scopeSets

	rules      atomic.Pointer[ruleSet]
	wake       chan struct{} // nudges the deleter when a deletion is queued
	notifyWake chan struct{} // nudges the notifier when a notification is queued

	connected atomic.Bool
	gaugedAt  time.Time // when the deleter last counted pending deletions
	self      string    // the user token's user id, from auth.test
	own       ownPosts  // messages the notifier posted
}

// ownPosts remembers the last messages securechat itself posted (alerts,
// DM notices), by conversation and text, so that their message events are
// not scanned: with a rule that happens to match a masked excerpt, scanning
// them would loop. They are remembered before the post, since the event can
// arrive before chat.postMessage answers.
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

type ruleSet struct {
	set        *detect.Set
	generation int64
	actions    map[int64]string // regex id → action
	allowed    map[string]bool  // allowlisted value fingerprints
}

type scopeSets struct {
	channels, exclude, types, exempt map[string]bool
}

func toSet(ss []string) map[string]bool {
	if len(ss) == 0 {
		return nil
	}
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[strings.TrimSpace(s)] = true
	}
	return m
}

// outOfScope says why a message is not scanned, or "" when it is.
func (d *Daemon) outOfScope(c content) string {
	sc := d.scope
	switch {
	case sc.channels != nil && !sc.channels[c.Channel]:
		return "channel not in scope.channels"
	case sc.exclude[c.Channel]:
		return "channel in scope.exclude_channels"
	case sc.types != nil && c.ChannelType != "" && !sc.types[c.ChannelType]:
		return "conversation type " + c.ChannelType + " not in scope.types"
	case sc.exempt[c.User]:
		return "author in scope.exempt_users"
	case c.User == d.self && d.own.has(c.Channel, c.RawText):
		return "securechat's own notice"
	}
	return ""
}

// New returns a daemon that uses st as its system of record and logs to log.
func New(st *store.Store, log zerolog.Logger, o Options) *Daemon {
	o.setDefaults()
	api := slack.New(o.UserToken,
		slack.OptionAppLevelToken(o.AppToken),
		slack.OptionAPIURL(o.APIURL),
		slack.OptionHTTPClient(o.HTTPClient),
	)
	poster := api
	if o.Notify.BotToken != "" {
		poster = slack.New(o.Notify.BotToken, slack.OptionAPIURL(o.APIURL), slack.OptionHTTPClient(o.HTTPClient))
	}
	return &Daemon{
		opts:       o,
		store:      st,
		log:        log,
		api:        api,
		poster:     poster,
		metrics:    o.Metrics,
		scope:      scopeSets{toSet(o.Scope.Channels), toSet(o.Scope.ExcludeChannels), toSet(o.Scope.Types), toSet(o.Scope.ExemptUsers)},
		wake:       make(chan struct{}, 1),
		notifyWake: make(chan struct{}, 1),
	}
}

// Connected reports whether the Socket Mode connection is up.
func (d *Daemon) Connected() bool { return d.connected.Load() }

// Run checks the tokens, connects and works until ctx is cancelled or a
// fatal error (a token Slack refuses) occurs. On cancellation it stops taking
// events, finishes those in flight (up to ShutdownTimeout), lets a deletion
// in progress complete and returns nil. Deletions still pending stay in the
// database and resume at the next Run. A refused token is returned as a
// *TokenError.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.checkAuth(ctx); err != nil {
		return err
	}
	if err := d.reload(ctx); err != nil {
		return fmt.Errorf("load rules: %w", err)
	}

	// life ends at shutdown or on a fatal error; the socket and the workers
	// have their own contexts so in-flight envelopes can still be acked.
	life, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	socketCtx, closeSocket := context.WithCancel(context.WithoutCancel(ctx))
	defer closeSocket()
	workCtx, abandonWork := context.WithCancel(context.WithoutCancel(ctx))
	defer abandonWork()

	sm := socketmode.New(d.api,
		socketmode.OptionLog(slackLogger{d.log}),
		socketmode.OptionPingInterval(d.opts.PingInterval),
	)

	var socketWG, workerWG, bgWG sync.WaitGroup
	socketWG.Go(func() {
		err := sm.RunContext(socketCtx)
		if err != nil && !errors.Is(err, context.Canceled) {
			stop(appTokenError(err))
		}
	})

	queue := make(chan socketmode.Event, d.opts.QueueSize)
	bgWG.Go(func() {
		defer close(queue)
		if err := d.readEvents(life, sm, queue); err != nil {
			stop(err)
		}
	})
	for range d.opts.Workers {
		workerWG.Go(func() {
			for ev := range queue {
				d.handle(workCtx, sm, ev)
			}
		})
	}
	bgWG.Go(func() {
		if err := d.runDeleter(life); err != nil {
			stop(err)
		}
	})
	bgWG.Go(func() { d.runReloader(life) })
	bgWG.Go(func() { d.runNotifier(life) })
	if d.opts.MetricsListener != nil {
		bgWG.Go(func() {
			if err := d.serveMetrics(life, d.opts.MetricsListener); err != nil {
				d.log.Error().Err(err).Msg("metrics listener failed")
			}
		})
	}
	if d.opts.Mode == ModeMonitor {
		d.log.Warn().Msg("monitor mode: leaks are recorded and alerted, no message is deleted")
	}

	<-life.Done()
	err := context.Cause(life)
	if errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err()) {
		err = nil
		d.log.Info().Msg("shutting down: no new events; finishing the ones in flight")
	}

	workersDone := make(chan struct{})
	go func() { workerWG.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-time.After(d.opts.ShutdownTimeout):
		d.log.Warn().Dur("waited", d.opts.ShutdownTimeout).
			Msg("events still in flight at the shutdown timeout; Slack will redeliver them, unacknowledged")
		abandonWork()
		<-workersDone
	}
	closeSocket()
	socketWG.Wait()
	bgWG.Wait()
	d.setConnected(false)
	if err == nil {
		d.log.Info().Msg("stopped")
	}
	return err
}

func (d *Daemon) setConnected(up bool) {
	d.connected.Store(up)
	if up {
		d.metrics.connectedGauge.Set(1)
	} else {
		d.metrics.connectedGauge.Set(0)
	}
}

// readEvents takes events from the socket client and hands the ones that
// need work to the queue. It blocks when the queue is full: backpressure
// instead of dropping (Slack redelivers what is not acknowledged).
func (d *Daemon) readEvents(ctx context.Context, sm *socketmode.Client, queue chan<- socketmode.Event) error {
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
				d.log.Info().Int("attempt", ce.Attempt).Msg("reconnecting to Slack")
			}
			d.setConnected(false)
			continue
		case socketmode.EventTypeConnectionError:
			ce, _ := ev.Data.(*slack.ConnectionErrorEvent)
			if ce != nil {
				if err := appTokenError(ce.ErrorObj); isTokenError(err) {
					return err
				}
				d.metrics.slackErrors.WithLabelValues("apps.connections.open", errCode(ce.ErrorObj)).Inc()
				d.log.Warn().Err(ce.ErrorObj).Dur("retry_in", ce.Backoff).Msg("cannot connect to Slack; retrying")
			}
			continue
		case socketmode.EventTypeInvalidAuth:
			return &TokenError{Env: "SLACK_APP_TOKEN", Code: "invalid_auth", Hint: appTokenHint}
		case socketmode.EventTypeConnected:
			d.setConnected(true)
			if ce, ok := ev.Data.(*socketmode.ConnectedEvent); ok {
				if ce.ConnectionCount > 0 {
					d.metrics.reconnects.Inc()
				}
				d.log.Info().Int("connection", ce.ConnectionCount).Msg("connected to Slack over Socket Mode")
			}
			continue
		case socketmode.EventTypeHello:
			continue
		case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorWriteFailed:
			d.log.Warn().Str("event", string(ev.Type)).Msg("socket mode connection trouble; slack-go reconnects by itself")
			continue
		}
		select {
		case queue <- ev:
		case <-ctx.Done():
			return nil
		}
	}
}

// handle processes one queued event. It always acknowledges, except when a
// leak could not be recorded: then Slack's redelivery is the retry.
func (d *Daemon) handle(ctx context.Context, sm *socketmode.Client, ev socketmode.Event) {
	switch ev.Type {
	case socketmode.EventTypeEventsAPI:
		if ev.Request == nil {
			return
		}
		d.process(ctx, sm, ev.Request.EnvelopeID, ev.Request.Payload, ev.Request.RetryAttempt)
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
			d.log.Warn().Int("bytes", len(bad.Message)).Msg("dropped an unreadable frame with no envelope id (nothing to acknowledge)")
			return
		}
		if env.Type == socketmode.RequestTypeEventsAPI {
			d.process(ctx, sm, env.EnvelopeID, env.Payload, env.RetryAttempt)
			return
		}
		d.ack(ctx, sm, env.EnvelopeID)
	default:
		if ev.Request != nil && ev.Request.EnvelopeID != "" {
			d.ack(ctx, sm, ev.Request.EnvelopeID) // slash commands, interactivity: not ours
		}
	}
}

func (d *Daemon) process(ctx context.Context, sm *socketmode.Client, envelopeID string, payload []byte, retry int) {
	c, eventID, skip, err := parseEvent(payload, d.opts.ScanBots)
	log := d.log.With().Str("envelope_id", envelopeID).Str("event_id", eventID).Logger()
	if err != nil {
		log.Warn().Err(err).Msg("acknowledged and skipped a malformed event")
		d.metrics.events.WithLabelValues("malformed").Inc()
		d.ack(ctx, sm, envelopeID)
		return
	}
	if skip == "" {
		skip = d.outOfScope(c)
		if skip != "" {
			d.metrics.events.WithLabelValues("out_of_scope").Inc()
		}
	} else {
		d.metrics.events.WithLabelValues("skipped").Inc()
	}
	if skip != "" {
		log.Trace().Str("reason", skip).Msg("skipped event")
		d.ack(ctx, sm, envelopeID)
		return
	}
	rs := d.rules.Load()
	start := time.Now()
	matches := rs.set.ScanNormalized(c.Text)
	d.metrics.scanSeconds.Observe(time.Since(start).Seconds())
	allowlisted := 0
	findings := make([]store.Finding, 0, len(matches))
	deleteMsg := false
	for _, m := range matches {
		if m.MAC != "" && rs.allowed[m.MAC] {
			allowlisted++
			continue
		}
		action := rs.actions[m.RuleID]
		switch {
		case d.opts.Mode == ModeMonitor:
			action = store.ActionMonitor
		case action == "":
			action = store.ActionDelete
		}
		deleteMsg = deleteMsg || action == store.ActionDelete
		findings = append(findings, store.Finding{RegexID: m.RuleID, Rule: m.Description, Excerpt: m.Excerpt,
			Start: m.Start, End: m.End, Action: action, MAC: m.MAC})
	}
	if len(findings) == 0 {
		outcome := "clean"
		if allowlisted > 0 {
			outcome = "allowlisted"
			log.Info().Str("channel", c.Channel).Str("ts", c.TS).Int("values", allowlisted).Msg("allowlisted value seen; not a leak")
		}
		d.metrics.events.WithLabelValues(outcome).Inc()
		d.ack(ctx, sm, envelopeID)
		return
	}
	msg := store.Message{Channel: c.Channel, User: c.User, TS: c.TS}
	var notes []store.OutboxItem
	if !deleteMsg {
		notes = d.outcomeNotes(msg, findings, store.ActionMonitor, "recorded (monitor: not deleted)", "")
	}
	res, err := d.record(ctx, msg, findings, deleteMsg, notes)
	if err != nil {
		d.metrics.events.WithLabelValues("record_failed").Inc()
		log.Error().Err(err).Str("channel", c.Channel).Str("ts", c.TS).
			Msg("could not record a leak; not acknowledging, so Slack redelivers the event")
		return
	}
	d.ack(ctx, sm, envelopeID)
	outcome := "queued for deletion"
	switch {
	case res.NewLeaks == 0:
		outcome = "already recorded (redelivered event)"
		d.metrics.events.WithLabelValues("redelivered").Inc()
	case !deleteMsg:
		outcome = "recorded (monitor: not deleted)"
	case !res.NewDeletion:
		outcome = "added to the message's pending deletion"
	}
	if res.NewLeaks > 0 {
		d.metrics.events.WithLabelValues("leak").Inc()
		for _, f := range findings {
			d.metrics.leaks.WithLabelValues(strconv.FormatInt(f.RegexID, 10), f.Action).Inc()
		}
	}
	for _, f := range findings {
		log.Info().Str("channel", c.Channel).Str("channel_type", c.ChannelType).Str("ts", c.TS).Str("user", c.User).
			Str("subtype", c.Subtype).Int64("regex_id", f.RegexID).Str("rule", f.Rule).Str("excerpt", f.Excerpt).
			Str("action", f.Action).Int("retry_attempt", retry).Str("outcome", outcome).Msg("leak detected")
	}
	if res.NewDeletion {
		nudge(d.wake)
	}
	if len(notes) > 0 && res.NewLeaks > 0 {
		nudge(d.notifyWake)
	}
}

func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// record stores a leak, retrying briefly on a busy database: Slack's ack
// deadline is 3 s, and an unacknowledged event is redelivered anyway.
func (d *Daemon) record(ctx context.Context, msg store.Message, fs []store.Finding, deleteMsg bool, notes []store.OutboxItem) (store.RecordResult, error) {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return store.RecordResult{}, ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		var res store.RecordResult
		res, err = d.store.RecordLeak(ctx, msg, fs, deleteMsg, notes...)
		if err == nil {
			return res, nil
		}
	}
	return store.RecordResult{}, err
}

func (d *Daemon) ack(ctx context.Context, sm *socketmode.Client, envelopeID string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := sm.AckCtx(ctx, envelopeID, nil); err != nil {
		d.log.Warn().Err(err).Str("envelope_id", envelopeID).Msg("could not acknowledge; Slack will redeliver (harmless: leaks are deduplicated)")
		return
	}
	d.metrics.acks.Inc()
}

// reload compiles the enabled regexes when the store's rule generation
// changed. Patterns that no longer compile are logged and skipped.
func (d *Daemon) reload(ctx context.Context) error {
	gen, err := d.store.RulesGeneration(ctx)
	if err != nil {
		return err
	}
	if cur := d.rules.Load(); cur != nil && cur.generation == gen {
		return nil
	}
	start := time.Now()
	rs, err := d.store.Regexes(ctx)
	if err != nil {
		return err
	}
	allowed, err := d.store.AllowedMACs(ctx)
	if err != nil {
		return err
	}
	set, errs := CompileRules(rs)
	if d.opts.AllowlistKey != nil {
		set = set.WithMACKey(d.opts.AllowlistKey)
	}
	actions := make(map[int64]string, len(rs))
	for _, r := range rs {
		actions[r.ID] = r.Action
	}
	for _, e := range errs {
		var pe *detect.PatternError
		if errors.As(e, &pe) {
			d.log.Warn().Int64("regex_id", pe.ID).Err(pe.Err).Msg("skipping a regex that does not compile; fix or remove it with 'securechat regex'")
		}
	}
	d.rules.Store(&ruleSet{set: set, generation: gen, actions: actions, allowed: allowed})
	d.metrics.generation.Set(float64(gen))
	d.metrics.rules.Set(float64(set.Len()))
	ev := d.log.Info()
	if set.Len() == 0 {
		ev = d.log.Warn()
	}
	ev.Int("rules", set.Len()).Int("skipped", len(errs)).Int("allowlisted_values", len(allowed)).Int64("generation", gen).
		Dur("took", time.Since(start)).Msg("rules loaded")
	return nil
}

func (d *Daemon) runReloader(ctx context.Context) {
	t := time.NewTicker(d.opts.ReloadInterval)
	defer t.Stop()
	sampled := d.log.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute})
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.reload(ctx); err != nil && ctx.Err() == nil {
			sampled.Warn().Err(err).Msg("could not reload rules; keeping the current ones")
		}
	}
}

// slackLogger sends slack-go's own log lines to zerolog at debug level.
type slackLogger struct{ log zerolog.Logger }

func (l slackLogger) Output(_ int, s string) error {
	l.log.Debug().Str("component", "slack-go").Msg(strings.TrimSpace(s))
	return nil
}
