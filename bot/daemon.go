// Package bot is securechat's daemon. Daemon.Run builds its components,
// each a package of its own given what it needs, and supervises them:
//
//   - bot/socket reads the Socket Mode connections and routes each envelope:
//     message events to the scanning queue, what a person waits on to the
//     people pool;
//   - bot/scan decides each message (bot/message decodes it and applies the
//     scope) with the current rule snapshot, records a leak with its pending
//     deletion and notices, and acknowledges the envelope once that is
//     durable; the runaway-rule breaker and the rule reloader live there;
//   - bot/deleter works through the durable deletion queue with chat.delete;
//   - bot/notify renders the notices and its Notifier sends them;
//   - bot/interact answers buttons, the report modal, /securechat and the
//     Home tab through package service (people.go hands them over);
//   - bot/catchup reads what was posted while no daemon was connected
//     through bot/history, on the leader (cluster.go);
//   - bot/metrics serves /metrics and the health probes; bot/slackapi says
//     what a Web API error means and checks the tokens before anything starts.
package bot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"golang.org/x/sync/errgroup"

	"github.com/securechat/securechat/bot/catchup"
	"github.com/securechat/securechat/bot/deleter"
	"github.com/securechat/securechat/bot/history"
	"github.com/securechat/securechat/bot/interact"
	"github.com/securechat/securechat/bot/message"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/notify"
	"github.com/securechat/securechat/bot/scan"
	"github.com/securechat/securechat/bot/slackapi"
	"github.com/securechat/securechat/bot/socket"
	"github.com/securechat/securechat/service"
	"github.com/securechat/securechat/store"
)

// Options configure a Daemon. A zero value takes its default from Defaults.
type Options struct {
	AppToken  string // xapp-…, opens the Socket Mode connection
	UserToken string // xoxp-…, deletes messages
	APIURL    string // Web API base URL

	Workers         int           // scanning goroutines
	QueueSize       int           // events waiting for a worker
	ReloadInterval  time.Duration // how often to look for rule changes
	ShutdownTimeout time.Duration // how long to finish in-flight events at shutdown
	// RecordTimeout bounds recording one leak (retries of a busy database
	// included) before its envelope is left unacknowledged for Slack to send
	// again; inside Slack's 3 s ack deadline.
	RecordTimeout time.Duration
	RetryMax      time.Duration // longest wait between deletion attempts
	ScanBots      bool          // scan bot_message and app posts too
	// ResumeMaxAge: when the daemon enforces again after monitor mode, held
	// deletions of messages seen within this age resume; older ones wait for
	// 'securechat leaks resume' (the message may have been edited clean).
	ResumeMaxAge time.Duration

	// Connections is how many Socket Mode connections this daemon keeps
	// open (Slack allows 10 per app, across every replica) [2].
	Connections int
	// Instance names this daemon among the replicas sharing its database
	// ["default"]; the store should be opened WithInstance of the same.
	Instance string
	// LeaseTTL is how long the leader lease lasts unrenewed: a replica
	// takes the singleton jobs over within it when the leader dies [15s].
	LeaseTTL time.Duration
	// StaggerConnections is the wait between opening one connection and
	// the next [5s].
	StaggerConnections time.Duration

	// PingInterval is how long the connection may go without a ping from
	// Slack before it is considered dead (slack-go's default).
	PingInterval time.Duration
	// HTTPClient is used for Web API calls and webhooks [a client with a 30s timeout].
	HTTPClient *http.Client
	// Now is the clock [time.Now].
	Now func() time.Time

	// Mode is ModeEnforce (each rule's action) or ModeMonitor (record and
	// alert, never delete).
	Mode string
	// Scope limits what is scanned.
	Scope Scope
	// Notify says who hears about a leak.
	Notify Notify
	// Admins are the Slack user ids who may act from Slack: the alert's
	// buttons, /securechat pause|resume|allow. Empty: nobody.
	Admins []string
	// AllowlistKey keys the value fingerprints that 'leaks allow' uses; nil
	// records no fingerprints.
	AllowlistKey []byte
	// Breaker is the runaway-rule breaker.
	Breaker scan.BreakerConfig
	// Catchup reads what was posted while the daemon was not connected.
	Catchup catchup.Config
	// Metrics collects the daemon's metrics [a new set].
	Metrics *Metrics
	// MetricsListener, when set, serves /metrics, /healthz and /readyz.
	MetricsListener net.Listener
}

// Modes.
const (
	ModeEnforce = "enforce"
	ModeMonitor = "monitor"
)

// DefaultAuthorMessage is the notice a member gets when their message is
// deleted. {rule}, {excerpt}, {channel} and {user} are filled in.
const DefaultAuthorMessage = "Your message in <#{channel}> was removed by securechat because it contained what looks like a secret ({rule}: `{excerpt}`). " +
	"If it is a real credential or card, treat it as exposed: rotate or revoke it now. Ask your workspace admins if this was a mistake."

// Defaults returns the daemon's defaults: the one place they are written
// down. The CLI's configuration defaults are built from them.
func Defaults() Options {
	return Options{
		APIURL:             slackapi.DefaultAPIURL,
		Workers:            4,
		QueueSize:          1024,
		ReloadInterval:     time.Second,
		ShutdownTimeout:    5 * time.Second,
		RecordTimeout:      2 * time.Second,
		RetryMax:           5 * time.Minute,
		ResumeMaxAge:       24 * time.Hour,
		PingInterval:       30 * time.Second,
		Connections:        2,
		Instance:           "default",
		LeaseTTL:           15 * time.Second,
		StaggerConnections: 5 * time.Second,
		Mode:               ModeEnforce,
		Notify:             Notify{Author: "ephemeral", AuthorMessage: DefaultAuthorMessage, DigestAbove: 10, NoisyReports: 3},
		Breaker:            scan.BreakerConfig{Enabled: true, MaxDeletions: 20, MaxShare: 0.05, MinScanned: 200, Window: 10 * time.Minute},
		Catchup:            catchup.Config{Enabled: true, Gap: 30 * time.Second, Lookback: 24 * time.Hour, Pace: history.DefaultPace},
	}
}

// withDefaults fills the zero fields of o from Defaults. Notify.Author is
// left as given: "" means no author notice.
func (o Options) withDefaults() Options {
	def := Defaults()
	if o.APIURL == "" {
		o.APIURL = def.APIURL
	}
	if !strings.HasSuffix(o.APIURL, "/") {
		o.APIURL += "/"
	}
	if o.Workers <= 0 {
		o.Workers = def.Workers
	}
	if o.QueueSize <= 0 {
		o.QueueSize = def.QueueSize
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = def.ReloadInterval
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = def.ShutdownTimeout
	}
	if o.RetryMax <= 0 {
		o.RetryMax = def.RetryMax
	}
	if o.RecordTimeout <= 0 {
		o.RecordTimeout = def.RecordTimeout
	}
	if o.Instance == "" {
		o.Instance = def.Instance
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = def.LeaseTTL
	}
	if o.Connections <= 0 {
		o.Connections = def.Connections
	}
	if o.StaggerConnections <= 0 {
		o.StaggerConnections = def.StaggerConnections
	}
	if o.PingInterval <= 0 {
		o.PingInterval = def.PingInterval
	}
	if o.ResumeMaxAge <= 0 {
		o.ResumeMaxAge = def.ResumeMaxAge
	}
	if o.Breaker.MaxDeletions <= 0 {
		o.Breaker.MaxDeletions = def.Breaker.MaxDeletions
	}
	if o.Breaker.MaxShare <= 0 {
		o.Breaker.MaxShare = def.Breaker.MaxShare
	}
	if o.Breaker.MinScanned <= 0 {
		o.Breaker.MinScanned = def.Breaker.MinScanned
	}
	if o.Breaker.Window <= 0 {
		o.Breaker.Window = def.Breaker.Window
	}
	if o.Catchup.Gap <= 0 {
		o.Catchup.Gap = def.Catchup.Gap
	}
	if o.Catchup.Lookback <= 0 {
		o.Catchup.Lookback = def.Catchup.Lookback
	}
	if o.Catchup.Pace.PerMinute <= 0 {
		o.Catchup.Pace.PerMinute = def.Catchup.Pace.PerMinute
	}
	if o.Catchup.Pace.PageSize <= 0 {
		o.Catchup.Pace.PageSize = def.Catchup.Pace.PageSize
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Mode == "" {
		o.Mode = def.Mode
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Notify.Author == "off" {
		o.Notify.Author = ""
	}
	if o.Notify.AuthorMessage == "" {
		o.Notify.AuthorMessage = def.Notify.AuthorMessage
	}
	if o.Notify.NoisyReports == 0 {
		o.Notify.NoisyReports = def.Notify.NoisyReports
	}
	if o.Notify.DigestAbove == 0 {
		o.Notify.DigestAbove = def.Notify.DigestAbove
	}
	return o
}

// Daemon is a securechat bot. Create it with New and start it with Run.
type Daemon struct {
	opts   Options
	store  *store.Store
	log    zerolog.Logger
	api    *slack.Client // user token: auth.test, Socket Mode, chat.delete
	poster *slack.Client // notices and alerts: the bot token's client, or api
	conn   *socket.State
}

// New returns a daemon that uses st as its system of record and logs to log.
func New(st *store.Store, log zerolog.Logger, o Options) *Daemon {
	o = o.withDefaults()
	api := slack.New(o.UserToken,
		slack.OptionAppLevelToken(o.AppToken),
		slack.OptionAPIURL(o.APIURL),
		slack.OptionHTTPClient(o.HTTPClient),
	)
	poster := api
	if o.Notify.BotToken != "" {
		poster = slack.New(o.Notify.BotToken, slack.OptionAPIURL(o.APIURL), slack.OptionHTTPClient(o.HTTPClient))
	}
	return &Daemon{opts: o, store: st, log: log, api: api, poster: poster,
		conn: socket.NewState(o.Metrics.ConnectedGauge)}
}

// Connected reports whether the Socket Mode connection is up.
func (d *Daemon) Connected() bool { return d.conn.IsUp() }

// Run checks the tokens, connects and works until ctx is cancelled or a
// fatal error (a token Slack refuses) occurs. On cancellation it stops taking
// events, finishes those in flight (up to ShutdownTimeout), lets a deletion
// in progress complete and returns nil. Deletions still pending stay in the
// database and resume at the next Run. A refused token is returned as a
// *TokenError.
func (d *Daemon) Run(ctx context.Context) error {
	o := d.opts
	self, scopes, err := slackapi.CheckAuth(ctx, d.api, d.log, slackapi.AuthOptions{Now: o.Now, APIURL: o.APIURL,
		WantIMWrite: o.Notify.Author != "" && o.Notify.BotToken == ""})
	if err != nil {
		if ctx.Err() != nil {
			d.log.Info().Msg("stopped before connecting")
			return nil // a stop asked for while auth.test was being retried is a clean stop
		}
		return err
	}
	if err := d.holdOrResume(ctx); err != nil {
		return err
	}
	dbStats := d.store.PoolStats
	o.Metrics.DB.Store(&dbStats)
	rules := scan.NewRules(d.store, o.AllowlistKey, o.Metrics, d.log.With().Str("component", "rules").Logger())
	rules.MaxAge = 2 * o.ReloadInterval
	if err := rules.Reload(ctx); err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	notes := notify.Notices{Cfg: o.Notify, Now: o.Now}
	notifier := notify.NewNotifier(notify.NotifierDeps{Store: d.store, Poster: d.poster, HTTP: o.HTTPClient, WebhookURL: o.Notify.WebhookURL,
		Metrics: o.Metrics, Log: d.log.With().Str("component", "notifier").Logger(), Now: o.Now, RetryMax: o.RetryMax,
		DigestAbove: max(o.Notify.DigestAbove, 0)})
	del := deleter.New(deleter.Deps{Store: d.store, API: d.api, Notes: notes, WakeNotifier: notifier.Wake,
		Metrics: o.Metrics, Log: d.log.With().Str("component", "deleter").Logger(), Now: o.Now, RetryMax: o.RetryMax})
	cl := &cluster{store: d.store, id: o.Instance, ttl: o.LeaseTTL, conn: d.conn,
		log: d.log.With().Str("component", "cluster").Logger()}
	// Before anything starts: a daemon alone on its database leads from the
	// first moment (its catch-up at start is not delayed).
	cl.tick(ctx)
	notifier.Leader = cl.isLeader
	rules.EndTrials = func(ctx context.Context) {
		if !cl.isLeader() {
			return
		}
		ended, err := d.store.EndTrials(ctx, o.Now(), notes.TrialEnded)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn().Err(err).Msg("could not end rule trials; trying again")
			}
			return
		}
		for _, r := range ended {
			d.log.Warn().Int64("regex_id", r.ID).Str("rule", r.Description).
				Msg("trial ended: the rule now deletes matching messages (stop it with 'securechat regex update ID --action monitor')")
		}
		if len(ended) > 0 {
			notifier.Wake()
		}
	}
	var brk *scan.Breaker
	if o.Breaker.Enabled && o.Mode != ModeMonitor {
		brk = scan.NewBreaker(o.Breaker, d.store, notes, o.Metrics, d.log.With().Str("component", "breaker").Logger(), o.Now)
	}
	prev, err := d.store.Presence(ctx)
	if err != nil {
		return err
	}
	stored, err := d.store.Watermarks(ctx)
	if err != nil {
		return err
	}
	mk := scan.NewMarks(stored)
	pipe := &scan.Pipeline{
		Store: d.store, Rules: rules, Notes: notes, Metrics: o.Metrics, Log: d.log,
		Scope: message.NewFilter(o.Scope, self, notifier.IsOwn), ScanBots: o.ScanBots, Monitor: o.Mode == ModeMonitor,
		RecordTimeout: o.RecordTimeout, Breaker: brk,
		WakeDeleter: del.Wake, WakeNotifier: notifier.Wake, Marks: mk,
	}
	reader := &socket.Reader{Log: d.log, Metrics: o.Metrics, State: d.conn, Lost: mk.Lost,
		ExpectConns: func() int { return o.Connections * cl.replicas() },
		Ghosts:      d.log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Minute}),
	}
	prog := &catchup.Progress{Store: d.store, Marks: mk, Conn: d.conn, Log: d.log.With().Str("component", "catchup").Logger(), Now: o.Now}
	var cu *catchup.Catchup
	if o.Catchup.Enabled {
		clog := d.log.With().Str("component", "catchup").Logger()
		cu = catchup.New(&catchup.Catchup{Cfg: o.Catchup, Store: d.store, Pipe: pipe, Marks: mk, Types: history.ReaderTypes(scopes), UsersRead: history.HasScope(scopes, "users:read"),
			Notes: notes, Log: clog, Metrics: o.Metrics, Now: o.Now, Prev: prev, Leader: cl.isLeader,
			Reader: history.NewReader(o.HTTPClient, o.APIURL, o.UserToken, o.Catchup.Pace, o.Metrics, clog, o.Now)})
		reader.Connected, reader.Disconnected = cu.Connected, cu.Disconnected
		cl.becameLeader = cu.Trigger
	} else {
		d.log.Warn().Msg("catch-up is off: messages posted while securechat is not connected are not scanned")
	}

	// The components stop when life ends: at shutdown, or when one of them
	// fails for good (the first error is Run's). The socket and the workers
	// have contexts of their own, so that events in flight can still be
	// acknowledged after life has ended.
	components, life := errgroup.WithContext(ctx)
	socketCtx, closeSocket := context.WithCancel(context.WithoutCancel(ctx))
	defer closeSocket()
	workCtx, abandonWork := context.WithCancel(context.WithoutCancel(ctx))
	defer abandonWork()

	// Several connections: Slack gives each event to one of the app's
	// connections, so while one is being refreshed (slack-go closes before
	// it reopens) or has dropped, the others still take events. They are
	// opened one after the other, StaggerConnections apart, so that their
	// refreshes (every few hours from their start) do not fall together.
	// Every connection feeds the one worker pool; each envelope is
	// acknowledged on the connection it came on.
	queue := make(chan socket.Envelope, o.QueueSize)
	priority := make(chan socket.Envelope, peopleQueue)
	pp := &people{log: d.log.With().Str("component", "interact").Logger(), metrics: o.Metrics}
	if o.Notify.BotToken != "" {
		noise := store.Noise{Reports: max(o.Notify.NoisyReports, 0), Notes: notes.Noisy}
		pp.h = interact.New(interact.Options{
			Service: service.New(d.store, o.Admins, o.Now), Poster: d.poster, HTTP: o.HTTPClient, Log: pp.log, Now: o.Now,
			ReportNotes: notes.Reported, Noise: noise, Wake: notifier.Wake, Mask: rules.Mask,
			Health: func() interact.Health {
				return interact.Health{Connections: d.conn.Count(), Leader: cl.isLeader(), Mode: o.Mode}
			},
		})
		if len(o.Admins) == 0 {
			d.log.Warn().Msg("no [slack] admins: nobody can use the alert buttons or /securechat pause|resume|allow; members can still report")
		}
	} else {
		d.log.Warn().Msg("no bot token (SLACK_BOT_TOKEN): notices and alerts have no buttons, and /securechat and the Home tab are off; everything else works")
	}
	var readers sync.WaitGroup
	for i := range o.Connections {
		sm := socketmode.New(d.api,
			socketmode.OptionLog(slackLogger{d.log.With().Int("socket", i+1).Logger()}),
			socketmode.OptionPingInterval(o.PingInterval),
		)
		components.Go(func() error {
			if i > 0 {
				select {
				case <-time.After(time.Duration(i) * o.StaggerConnections):
				case <-life.Done():
					return nil
				}
			}
			err := sm.RunContext(socketCtx)
			if err != nil && !errors.Is(err, context.Canceled) {
				return slackapi.AppTokenError(err)
			}
			return nil
		})
		readers.Add(1)
		components.Go(func() error {
			defer readers.Done()
			return reader.Read(life, i+1, sm, queue, priority)
		})
	}
	go func() { readers.Wait(); close(queue); close(priority) }()
	var workers sync.WaitGroup
	for range peopleWorkers {
		workers.Go(func() {
			for env := range priority {
				pp.handle(workCtx, env.SM, env.Ev)
			}
		})
	}
	for range o.Workers {
		workers.Go(func() {
			for env := range queue {
				pipe.Handle(workCtx, env.SM, env.Ev)
			}
		})
	}
	if o.Mode != ModeMonitor {
		components.Go(func() error { return del.Run(life) })
	}
	components.Go(func() error { rules.Run(life, o.ReloadInterval); return nil })
	components.Go(func() error { notifier.Run(life); return nil })
	components.Go(func() error { prog.Run(life); return nil })
	components.Go(func() error { cl.run(life); return nil })
	// Hints from the other processes on the database (PostgreSQL's
	// NOTIFY): a rule changed, work was queued. Polling stays the
	// guarantee; a hint only saves the wait.
	components.Go(func() error {
		return d.store.Watch(life, func(h string) {
			switch h {
			case store.HintRules:
				rules.Hint()
			case store.HintWork:
				del.Wake()
				notifier.Wake()
			}
		})
	})
	if cu != nil {
		components.Go(func() error { cu.Run(life); return nil })
	}
	if brk != nil {
		components.Go(func() error { brk.Run(life); return nil })
	}
	if o.MetricsListener != nil {
		components.Go(func() error {
			ready := func(ctx context.Context) error {
				if err := d.store.CheckSchema(ctx); err != nil {
					return fmt.Errorf("database: %w", err)
				}
				if !d.Connected() {
					return errors.New("no Socket Mode connection is up")
				}
				if rules.Current() == nil {
					return errors.New("the rules are not loaded")
				}
				return nil
			}
			if err := metrics.Serve(life, o.MetricsListener, o.Metrics, d.store, ready); err != nil {
				d.log.Error().Err(err).Msg("metrics listener failed")
			}
			return nil
		})
	}
	if o.Mode == ModeMonitor {
		d.log.Warn().Msg("monitor mode: leaks are recorded and alerted, no message is deleted")
	}

	<-life.Done()
	if ctx.Err() != nil {
		d.log.Info().Msg("shutting down: no new events; finishing the ones in flight")
	}
	workersDone := make(chan struct{})
	go func() { workers.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-time.After(o.ShutdownTimeout):
		mk.Lost()
		d.log.Warn().Dur("waited", o.ShutdownTimeout).
			Msg("events still in flight at the shutdown timeout; Slack will redeliver them, unacknowledged")
		abandonWork()
		<-workersDone
	}
	closeSocket()
	err = components.Wait()
	// The last watermarks, and whether they are exact: every event seen was
	// handled (the events still queued at a timeout were not).
	saveCtx, cancelSave := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	prog.Finish(saveCtx, err == nil && mk.IsClean())
	cancelSave()
	d.conn.Set(false)
	if err == nil {
		d.log.Info().Msg("stopped")
	}
	return err
}

// holdOrResume applies the mode to the deletions already queued. In monitor
// mode nothing is deleted: pending deletions (a rate-limit backlog, say) are
// held, not dropped. In enforce mode, deletions held by monitor mode resume
// when their message is younger than ResumeMaxAge; older ones stay held
// until an admin runs 'securechat leaks resume'.
func (d *Daemon) holdOrResume(ctx context.Context) error {
	if d.opts.Mode == ModeMonitor {
		n, err := d.store.HoldPending(ctx, store.HoldMonitor)
		if err != nil {
			return fmt.Errorf("hold queued deletions for monitor mode: %w", err)
		}
		if n > 0 {
			d.log.Warn().Int("held", n).Msg("monitor mode: queued deletions are held, not carried out; they resume when securechat enforces again")
		}
		return nil
	}
	resumed, still, err := d.store.ResumeHeld(ctx, store.HoldMonitor, d.opts.Now().Add(-d.opts.ResumeMaxAge))
	if err != nil {
		return fmt.Errorf("resume deletions held by monitor mode: %w", err)
	}
	if resumed > 0 {
		d.log.Info().Int("resumed", resumed).Dur("younger_than", d.opts.ResumeMaxAge).Msg("resumed deletions held by monitor mode")
	}
	if still > 0 {
		d.log.Warn().Int("held", still).Dur("older_than", d.opts.ResumeMaxAge).
			Msg("held deletions wait for an admin (the messages may have been edited since): review with 'securechat leaks list --status held', then 'securechat leaks resume ID...' or 'securechat leaks cancel ID...'")
	}
	return nil
}

// slackLogger sends slack-go's own log lines to zerolog at debug level.
type slackLogger struct{ log zerolog.Logger }

func (l slackLogger) Output(_ int, s string) error {
	l.log.Debug().Str("component", "slack-go").Msg(strings.TrimSpace(s))
	return nil
}
