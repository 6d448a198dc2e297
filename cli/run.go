package cli

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/bot/history"
	"github.com/securechat/securechat/store"
)

// newLogger builds the one logger of the process from the log settings.
func (a *app) newLogger() zerolog.Logger {
	level, err := zerolog.ParseLevel(strings.ToLower(a.cfg.Log.Level))
	if err != nil {
		level = zerolog.InfoLevel
	}
	var w io.Writer = a.Stderr
	if a.cfg.Log.Format == "console" {
		noColor := true
		if f, ok := a.Stderr.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				noColor = false
			}
		}
		w = zerolog.ConsoleWriter{Out: a.Stderr, TimeFormat: time.RFC3339, NoColor: noColor}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func newRunCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: watch Slack over Socket Mode and delete leaking messages",
		Long: `Run the daemon. It checks SLACK_USER_TOKEN with auth.test, connects over Socket Mode
with SLACK_APP_TOKEN (no public endpoint needed), scans every message the token's user can
see with the enabled regexes, records each leak and deletes the message with chat.delete.

Regexes changed with 'securechat regex' apply within a couple of seconds, no restart.
Deletions are queued in the database first: a crash or restart loses none of them.
SIGINT or SIGTERM stops it cleanly (exit 0); a second signal exits at once.

Tokens are read from the environment or the config file, never from flags (flags show
in ps).`,
		Example: `  export SLACK_APP_TOKEN=xapp-… SLACK_USER_TOKEN=xoxp-…
  securechat run --db /var/lib/securechat/securechat.db --log-format json`,
		Args: cobra.NoArgs,
		// It finishes what is in flight when interrupted: Run waits for it.
		Annotations: map[string]string{annotNeedsSlack: "yes", annotInterrupt: interruptFinishes},
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := a.newLogger()
			// A write waits for a lock at most as long as recording a leak may
			// take, so that a locked database leaves the envelope unacked in
			// time for Slack to send it again.
			s, err := a.openStore(cmd.Context(), openCreate, store.WithBusyTimeout(a.cfg.Daemon.RecordTimeout.Duration),
				store.WithInstance(a.instanceID()))
			if err != nil {
				return err
			}
			defer s.Close()
			abs, err := filepath.Abs(s.Path())
			if err != nil {
				abs = s.Path()
			}
			rs, err := s.Regexes(cmd.Context())
			if err != nil {
				return err
			}
			enabled := 0
			for _, r := range rs {
				if r.Enabled {
					enabled++
				}
			}
			allowEmpty, _ := cmd.Flags().GetBool("allow-empty")
			if enabled == 0 && !allowEmpty {
				return &hintError{err: fmt.Errorf("no enabled regex in %s (%d stored): the daemon would scan and find nothing", abs, len(rs)),
					hint: fmt.Sprintf("add rules to this database (securechat --db %s regex add --builtin payment-card), check that every command uses the same database (--db, %s or db in the config), or pass --allow-empty to run with none", abs, EnvDB)}
			}
			opts := a.botOptions()
			if addr := a.cfg.Metrics.Addr; addr != "" {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return fmt.Errorf("listen for metrics on %s: %w (is the port in use? change --metrics-addr or [metrics] addr)", addr, err)
				}
				opts.MetricsListener = ln
				log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /healthz and /readyz")
			}
			if a.cfg.Allowlist.Secret == "" {
				log.Warn().Msg("no allowlist secret: leaks are recorded without value fingerprints, so 'leaks allow' cannot allowlist them; set " + EnvAllowKey)
			}
			log.Info().Str("db", abs).Int("rules_enabled", enabled).Int("rules_stored", len(rs)).Str("version", Version).
				Str("mode", a.cfg.Daemon.Mode).Msg("securechat starting")
			d := bot.New(s, log, opts)
			return d.Run(cmd.Context())
		},
	}
	// The values are read by resolveConfig (applyFlags), with the others.
	def := bot.Defaults()
	fl := cmd.Flags()
	fl.Int("workers", 0, fmt.Sprintf("scanning goroutines (default %d, [daemon] workers)", def.Workers))
	fl.Int("connections", 0, fmt.Sprintf("Socket Mode connections to keep open; Slack gives each event to one of them, so a refresh or a dropped one misses nothing (default %d, [socket] connections)", def.Connections))
	fl.Int("queue-size", 0, fmt.Sprintf("events waiting for a worker; one that finds the queue full is left unacknowledged for Slack to send again (default %d, [daemon] queue_size)", def.QueueSize))
	fl.String("api-url", "", "Slack Web API base URL (env "+EnvAPIURL+", default "+def.APIURL+")")
	fl.Bool("scan-bots", false, "scan messages posted by bots and apps too ([daemon] scan_bots)")
	fl.String("metrics-addr", "", "serve Prometheus /metrics, /healthz and /readyz on this address, e.g. 127.0.0.1:9090 (env "+EnvMetrics+")")
	fl.Bool("monitor", false, "record and alert only, never delete ([daemon] mode = \"monitor\")")
	fl.Bool("allow-empty", false, "start even when the database holds no enabled regex (by default that exits 2: it is almost always the wrong database)")
	return cmd
}

// instanceID names this daemon among the replicas on its database:
// SECURECHAT_INSTANCE (a pod's name, say), else the host and the process,
// unique while it runs.
func (a *app) instanceID() string {
	if id := a.Getenv(EnvInstance); id != "" {
		return id
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func (a *app) botOptions() bot.Options {
	c := a.cfg
	return bot.Options{
		Instance:           a.instanceID(),
		AppToken:           c.Slack.AppToken,
		UserToken:          c.Slack.UserToken,
		APIURL:             c.APIURL(),
		Workers:            c.Daemon.Workers,
		Connections:        c.Socket.Connections,
		StaggerConnections: c.Socket.Stagger.Duration,
		LeaseTTL:           c.Socket.LeaderLease.Duration,
		QueueSize:          c.Daemon.QueueSize,
		ReloadInterval:     c.Daemon.ReloadInterval.Duration,
		ShutdownTimeout:    c.Daemon.ShutdownTimeout.Duration,
		RecordTimeout:      c.Daemon.RecordTimeout.Duration,
		RetryMax:           c.Daemon.RetryMax.Duration,
		ResumeMaxAge:       c.Daemon.ResumeMaxAge.Duration,
		ScanBots:           c.Daemon.ScanBots,
		Now:                a.Now,
		Mode:               c.Daemon.Mode,
		Scope: bot.Scope{Channels: c.Scope.Channels, ExcludeChannels: c.Scope.ExcludeChannels,
			Types: c.Scope.Types, ExemptUsers: c.Scope.ExemptUsers},
		Notify: bot.Notify{Author: c.Notify.Author, AuthorMessage: c.Notify.AuthorMessage, BotToken: c.Notify.BotToken,
			AlertChannel: c.Notify.AlertChannel, WebhookURL: c.Notify.WebhookURL, DigestAbove: digestAbove(c.Notify.DigestAbove),
			NoisyReports: noisyReports(c.Notify.NoisyReports)},
		Admins:       c.Slack.Admins,
		AllowlistKey: allowKey(c.Allowlist.Secret),
		Breaker: bot.Breaker{Enabled: c.Breaker.Enabled, MaxDeletions: c.Breaker.MaxDeletions, MaxShare: c.Breaker.MaxShare,
			MinScanned: c.Breaker.MinScanned, Window: c.Breaker.Window.Duration},
		Catchup: bot.Catchup{Enabled: c.Catchup.Enabled, Gap: c.Catchup.Gap.Duration, Lookback: c.Catchup.Lookback.Duration,
			Pace: history.Pace{PerMinute: c.Catchup.RequestsPerMinute, PageSize: c.Catchup.PageSize}},
	}
}

func allowKey(secret string) []byte {
	if secret == "" {
		return nil
	}
	return []byte(secret)
}

// digestAbove maps the config's 0 (never merge) to the daemon's negative.
func digestAbove(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// noisyReports maps the configuration's 0 (never) to the daemon's
// negative.
func noisyReports(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
