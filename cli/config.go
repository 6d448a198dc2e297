package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/store"
)

// Config is everything securechat can be configured with. Values come from,
// in rising order of precedence: the defaults, the TOML file (--config or
// SECURECHAT_CONFIG), the environment, and flags the user set.
type Config struct {
	DB        string          `toml:"db"`
	dbFrom    string          // where DB came from: fromDefault, fromFile, fromEnv or fromFlag
	dbErr     error           // why there is no default database, when DB is ""
	Slack     SlackConfig     `toml:"slack"`
	Log       LogConfig       `toml:"log"`
	Daemon    DaemonConfig    `toml:"daemon"`
	Scope     ScopeConfig     `toml:"scope"`
	Notify    NotifyConfig    `toml:"notify"`
	Allowlist AllowlistConfig `toml:"allowlist"`
	Metrics   MetricsConfig   `toml:"metrics"`
	Breaker   BreakerConfig   `toml:"breaker"`
	Catchup   CatchupConfig   `toml:"catchup"`
	Socket    SocketConfig    `toml:"socket"`
}

// SocketConfig sets the daemon's Socket Mode connections.
type SocketConfig struct {
	// Connections kept open by each daemon (Slack allows 10 per app, over
	// every replica).
	Connections int `toml:"connections"`
	// Stagger is the wait between opening one connection and the next.
	Stagger Duration `toml:"stagger"`
	// LeaderLease is how long the leader lease lasts unrenewed.
	LeaderLease Duration `toml:"leader_lease"`
}

// CatchupConfig tunes the catch-up after downtime.
type CatchupConfig struct {
	Enabled           bool     `toml:"enabled"`
	Gap               Duration `toml:"gap"`
	Lookback          Duration `toml:"lookback"`
	RequestsPerMinute int      `toml:"requests_per_minute"`
	PageSize          int      `toml:"page_size"`
}

// BreakerConfig tunes the runaway-rule breaker.
type BreakerConfig struct {
	Enabled      bool     `toml:"enabled"`
	MaxDeletions int      `toml:"max_deletions"`
	MaxShare     float64  `toml:"max_share"`
	MinScanned   int      `toml:"min_scanned"`
	Window       Duration `toml:"window"`
}

// ScopeConfig says which messages are scanned (applied at start).
type ScopeConfig struct {
	Channels        []string `toml:"channels"`
	ExcludeChannels []string `toml:"exclude_channels"`
	Types           []string `toml:"types"`
	ExemptUsers     []string `toml:"exempt_users"`
}

// NotifyConfig says who hears about a leak.
type NotifyConfig struct {
	Author        string `toml:"author"`
	AuthorMessage string `toml:"author_message"`
	BotToken      string `toml:"bot_token"`
	AlertChannel  string `toml:"alert_channel"`
	WebhookURL    string `toml:"webhook_url"`
	DigestAbove   int    `toml:"digest_above"`
	// NoisyReports is how many "Not a secret" reports flag a rule as noisy.
	NoisyReports int `toml:"noisy_reports"`
}

// AllowlistConfig holds the key of the value fingerprints.
type AllowlistConfig struct {
	Secret string `toml:"secret"`
}

// MetricsConfig sets the metrics and health listener.
type MetricsConfig struct {
	Addr string `toml:"addr"`
}

// SlackConfig holds the tokens and the API endpoint.
type SlackConfig struct {
	AppToken  string `toml:"app_token"`
	UserToken string `toml:"user_token"`
	APIURL    string `toml:"api_url"`
	// Admins are the Slack user ids who may act from Slack (the alert's
	// buttons, /securechat pause|resume|allow).
	Admins []string `toml:"admins"`
}

// LogConfig sets the daemon's log output.
type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// DaemonConfig tunes `securechat run`.
type DaemonConfig struct {
	Workers         int      `toml:"workers"`
	QueueSize       int      `toml:"queue_size"`
	ReloadInterval  Duration `toml:"reload_interval"`
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	RecordTimeout   Duration `toml:"record_timeout"`
	ScanBots        bool     `toml:"scan_bots"`
	RetryMax        Duration `toml:"retry_max"`
	ResumeMaxAge    Duration `toml:"resume_max_age"`
	Mode            string   `toml:"mode"`
}

// Duration is a time.Duration written as "1s" or "5m" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration ("1s", "1m30s").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like \"1s\" or \"5m\")", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults returns the configuration used when nothing else is set. The
// daemon's settings come from bot.Defaults, the one place they are kept.
func Defaults() Config {
	d := bot.Defaults()
	return Config{
		Slack: SlackConfig{APIURL: d.APIURL},
		Log:   LogConfig{Level: "info", Format: "console"},
		Daemon: DaemonConfig{
			Workers:         d.Workers,
			QueueSize:       d.QueueSize,
			ReloadInterval:  Duration{d.ReloadInterval},
			ShutdownTimeout: Duration{d.ShutdownTimeout},
			RecordTimeout:   Duration{d.RecordTimeout},
			RetryMax:        Duration{d.RetryMax},
			ResumeMaxAge:    Duration{d.ResumeMaxAge},
			Mode:            d.Mode,
		},
		Socket: SocketConfig{Connections: d.Connections, Stagger: Duration{d.StaggerConnections}, LeaderLease: Duration{d.LeaseTTL}},
		Scope:  ScopeConfig{Types: []string{"channel", "group", "im", "mpim"}},
		Notify: NotifyConfig{Author: d.Notify.Author, AuthorMessage: d.Notify.AuthorMessage, DigestAbove: d.Notify.DigestAbove, NoisyReports: d.Notify.NoisyReports},
		Breaker: BreakerConfig{Enabled: d.Breaker.Enabled, MaxDeletions: d.Breaker.MaxDeletions, MaxShare: d.Breaker.MaxShare,
			MinScanned: d.Breaker.MinScanned, Window: Duration{d.Breaker.Window}},
		Catchup: CatchupConfig{Enabled: d.Catchup.Enabled, Gap: Duration{d.Catchup.Gap}, Lookback: Duration{d.Catchup.Lookback},
			RequestsPerMinute: d.Catchup.Pace.PerMinute, PageSize: d.Catchup.Pace.PageSize},
	}
}

// Where a setting came from, lowest precedence first.
const (
	fromDefault = "default"
	fromFile    = "config file"
	fromEnv     = "environment"
	fromFlag    = "flag"
)

// resolveConfig builds the configuration of the command being run, once:
// defaults < the TOML file (--config or SECURECHAT_CONFIG) < the environment
// < the flags the user set on cmd. Then it validates the result, the daemon's
// Slack settings too when cmd talks to Slack. Warnings (a config file others
// can read that holds secrets) go to stderr.
func resolveConfig(cmd *cobra.Command, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := Defaults()
	c.dbFrom = fromDefault
	flags := cmd.Flags()
	path, _ := flags.GetString("config")
	if path == "" {
		path = getenv(EnvConfig)
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return c, fmt.Errorf("config file %s does not exist (check --config or %s; config.example.toml documents every key)", path, EnvConfig)
			}
			return c, fmt.Errorf("open config file: %w", err)
		}
		defer f.Close()
		db := c.DB
		if err := c.LoadFile(f, path); err != nil {
			return c, err
		}
		if c.DB != db {
			c.dbFrom = fromFile
		}
		warnReadableSecrets(stderr, c, f, path)
	}
	if getenv(EnvDB) != "" {
		c.dbFrom = fromEnv
	}
	c.LoadEnv(getenv)
	if flags.Changed("db") {
		c.dbFrom = fromFlag
	}
	c.applyFlags(flags)
	switch {
	case c.DB == "" && c.dbFrom == fromDefault:
		// Without a HOME there is no default; only commands that open the
		// database need one (openStore reports it), the demo does not.
		c.DB, c.dbErr = DefaultDBPath(getenv)
	case c.DB == "":
		return c, fmt.Errorf("the database path from the %s is empty: give a file, or leave it unset for the default", c.dbFrom)
	}
	return c, c.Validate(cmd.Annotations[annotNeedsSlack] != "")
}

// DefaultDBPath is the database used when none is configured. It never
// depends on the current directory: $STATE_DIRECTORY/securechat.db under
// systemd (StateDirectory=), else $XDG_STATE_HOME/securechat/securechat.db,
// else ~/.local/state/securechat/securechat.db.
func DefaultDBPath(getenv func(string) string) (string, error) {
	if dirs := getenv("STATE_DIRECTORY"); dirs != "" {
		dir, _, _ := strings.Cut(dirs, ":") // systemd lists one per StateDirectory= entry
		return filepath.Join(dir, store.DefaultPath), nil
	}
	if dir := getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "securechat", store.DefaultPath), nil
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".local", "state", "securechat", store.DefaultPath), nil
	}
	return "", fmt.Errorf("no database is configured and there is no HOME to put one in: set --db, %s or db in the config file", EnvDB)
}

// applyFlags applies the configuration flags the user set. Each flag is
// looked up by name, so one table serves every command: a command has only
// some of them.
func (c *Config) applyFlags(fs *pflag.FlagSet) {
	set := func(name string, apply func(f *pflag.Flag)) {
		if f := fs.Lookup(name); f != nil && f.Changed {
			apply(f)
		}
	}
	str := func(name string, dst *string) { set(name, func(f *pflag.Flag) { *dst = f.Value.String() }) }
	num := func(name string, dst *int) { set(name, func(*pflag.Flag) { *dst, _ = fs.GetInt(name) }) }
	boolean := func(name string, dst *bool) { set(name, func(*pflag.Flag) { *dst, _ = fs.GetBool(name) }) }
	str("db", &c.DB)
	str("log-level", &c.Log.Level)
	str("log-format", &c.Log.Format)
	num("workers", &c.Daemon.Workers)
	num("connections", &c.Socket.Connections)
	num("queue-size", &c.Daemon.QueueSize)
	str("api-url", &c.Slack.APIURL)
	boolean("scan-bots", &c.Daemon.ScanBots)
	str("metrics-addr", &c.Metrics.Addr)
	set("monitor", func(*pflag.Flag) {
		if on, _ := fs.GetBool("monitor"); on {
			c.Daemon.Mode = bot.ModeMonitor
		}
	})
}

// warnReadableSecrets warns when a config file holding a secret (a Slack
// token, the allowlist secret, a webhook URL) can be read by other users.
func warnReadableSecrets(w io.Writer, c Config, f *os.File, path string) {
	var held []string
	for _, s := range []struct{ name, value string }{
		{"slack app_token", c.Slack.AppToken}, {"slack user_token", c.Slack.UserToken}, {"notify bot_token", c.Notify.BotToken},
		{"allowlist secret", c.Allowlist.Secret}, {"notify webhook_url", c.Notify.WebhookURL},
	} {
		if s.value != "" {
			held = append(held, s.name)
		}
	}
	if len(held) == 0 {
		return
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm()&0o044 != 0 {
		fmt.Fprintf(w, "warning: %s holds secrets (%s) and is readable by other users; run: chmod 600 %s\n", path, strings.Join(held, ", "), path)
	}
}

// LoadFile reads a TOML configuration over c. Unknown keys are an error, so a
// typo does not silently leave a setting at its default.
func (c *Config) LoadFile(r io.Reader, name string) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read config %s: %w", name, err)
	}
	md, err := toml.NewDecoder(bytes.NewReader(body)).Decode(c)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("config %s: line %d: %s", name, perr.Position.Line, perr.Message)
		}
		return fmt.Errorf("config %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("config %s: unknown key(s) %s (see config.example.toml for the ones that exist)", name, strings.Join(keys, ", "))
	}
	return nil
}

// Environment variables securechat reads.
const (
	EnvConfig    = "SECURECHAT_CONFIG"
	EnvDB        = "SECURECHAT_DB"
	EnvLogLevel  = "SECURECHAT_LOG_LEVEL"
	EnvLogFormat = "SECURECHAT_LOG_FORMAT"
	EnvAppToken  = "SLACK_APP_TOKEN"
	EnvUserToken = "SLACK_USER_TOKEN"
	EnvAPIURL    = "SLACK_API_URL"
	EnvBotToken  = "SLACK_BOT_TOKEN"
	// EnvAdmins lists the Slack user ids of the admins, comma-separated.
	EnvAdmins   = "SECURECHAT_ADMINS"
	EnvAllowKey = "SECURECHAT_ALLOWLIST_SECRET"
	EnvMetrics  = "SECURECHAT_METRICS_ADDR"
	// EnvInstance names the daemon among replicas [host-pid].
	EnvInstance = "SECURECHAT_INSTANCE"
	EnvBreaker  = "SECURECHAT_BREAKER" // "off" turns the runaway-rule breaker off (load tests, benchmarks)
)

// LoadEnv applies the environment over c.
func (c *Config) LoadEnv(getenv func(string) string) {
	set := func(dst *string, key string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	set(&c.DB, EnvDB)
	set(&c.Log.Level, EnvLogLevel)
	set(&c.Log.Format, EnvLogFormat)
	set(&c.Slack.AppToken, EnvAppToken)
	set(&c.Slack.UserToken, EnvUserToken)
	set(&c.Slack.APIURL, EnvAPIURL)
	set(&c.Notify.BotToken, EnvBotToken)
	set(&c.Allowlist.Secret, EnvAllowKey)
	set(&c.Metrics.Addr, EnvMetrics)
	if v := getenv(EnvAdmins); v != "" {
		c.Slack.Admins = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	}
	switch strings.ToLower(getenv(EnvBreaker)) {
	case "off", "false", "0":
		c.Breaker.Enabled = false
	case "on", "true", "1":
		c.Breaker.Enabled = true
	}
}

// Validate checks the settings and names the field that is wrong. With
// slack set it also checks what talking to Slack needs: both tokens, of the
// right kind, and a usable API URL.
func (c *Config) Validate(slack bool) error {
	switch strings.ToLower(c.Log.Level) {
	case "trace", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log level %q is not one of trace, debug, info, warn, error (--log-level, %s or [log] level)", c.Log.Level, EnvLogLevel)
	}
	switch c.Log.Format {
	case "console", "json":
	default:
		return fmt.Errorf("log format %q is not json or console (--log-format, %s or [log] format)", c.Log.Format, EnvLogFormat)
	}
	if n := c.Socket.Connections; n < 1 || n > 10 {
		return fmt.Errorf("socket connections = %d: use 1 to 10 (Slack allows 10 per app, counting every replica's; 2 or 3 per replica is plenty)", n)
	}
	if l := c.Socket.LeaderLease.Duration; l < time.Second || l > 10*time.Minute {
		return fmt.Errorf("socket leader_lease = %s: use 1s to 10m", c.Socket.LeaderLease)
	}
	if c.Socket.Stagger.Duration < 100*time.Millisecond {
		return fmt.Errorf("socket stagger = %s: use at least 100ms", c.Socket.Stagger)
	}
	d := c.Daemon
	if d.Workers < 1 || d.Workers > 256 {
		return fmt.Errorf("daemon workers = %d: use 1 to 256", d.Workers)
	}
	if d.QueueSize < 1 || d.QueueSize > 1_000_000 {
		return fmt.Errorf("daemon queue_size = %d: use 1 to 1000000", d.QueueSize)
	}
	if d.ReloadInterval.Duration < 100*time.Millisecond {
		return fmt.Errorf("daemon reload_interval = %s: use at least 100ms", d.ReloadInterval)
	}
	if d.RecordTimeout.Duration < 100*time.Millisecond || d.RecordTimeout.Duration > 2500*time.Millisecond {
		return fmt.Errorf("daemon record_timeout = %s: use 100ms to 2.5s (Slack wants an ack within 3s)", d.RecordTimeout)
	}
	if d.ShutdownTimeout.Duration <= 0 {
		return fmt.Errorf("daemon shutdown_timeout = %s: must be positive", d.ShutdownTimeout)
	}
	if d.RetryMax.Duration < time.Second {
		return fmt.Errorf("daemon retry_max = %s: use at least 1s", d.RetryMax)
	}
	if b := c.Breaker; b.Enabled && (b.MaxDeletions < 1 || b.MaxShare <= 0 || b.MaxShare > 1 || b.MinScanned < 1 || b.Window.Duration < time.Minute) {
		return fmt.Errorf("breaker: max_deletions %d, max_share %g, min_scanned %d, window %s: use at least 1, a share in (0, 1], at least 1 and at least 1m (or enabled = false)",
			b.MaxDeletions, b.MaxShare, b.MinScanned, b.Window)
	}
	if cu := c.Catchup; cu.Enabled && (cu.Gap.Duration < time.Second || cu.Lookback.Duration < time.Minute || cu.Lookback.Duration > 90*24*time.Hour ||
		cu.RequestsPerMinute < 1 || cu.RequestsPerMinute > 1000) {
		return fmt.Errorf("catchup: gap %s, lookback %s, requests_per_minute %d: use a gap of at least 1s, a lookback from 1m to 2160h, and 1 to 1000 requests a minute (or enabled = false)",
			cu.Gap, cu.Lookback, cu.RequestsPerMinute)
	}
	if n := c.Catchup.PageSize; n < 1 || n > 999 {
		return fmt.Errorf("catchup page_size = %d: use 1 to 999 messages a page (Slack recommends at most 200)", n)
	}
	if d.ResumeMaxAge.Duration < time.Minute {
		return fmt.Errorf("daemon resume_max_age = %s: use at least 1m", d.ResumeMaxAge)
	}
	if d.Mode != "enforce" && d.Mode != "monitor" {
		return fmt.Errorf("daemon mode = %q: use enforce (each rule's action) or monitor (never delete)", d.Mode)
	}
	for _, t := range c.Scope.Types {
		switch t {
		case "channel", "group", "im", "mpim":
		default:
			return fmt.Errorf("scope types: %q is not one of channel (public), group (private), im (DM), mpim (group DM)", t)
		}
	}
	for _, id := range c.Slack.Admins {
		if !validUserID(id) {
			return fmt.Errorf("slack admins: %q is not a Slack user id (U… or W…, as in a member's profile: ⋮ → Copy member ID)", id)
		}
	}
	if n := c.Notify.NoisyReports; n < 0 || n > 10000 {
		return fmt.Errorf("notify noisy_reports = %d: use 1 to 10000 reports (0 never flags a rule)", n)
	}
	if n := c.Notify.DigestAbove; n < 0 || n > 1000 {
		return fmt.Errorf("notify digest_above = %d: use 1 to 1000 alerts a minute (0 never merges them)", n)
	}
	switch c.Notify.Author {
	case "ephemeral", "dm", "off":
	default:
		return fmt.Errorf("notify author = %q: use ephemeral, dm or off", c.Notify.Author)
	}
	if c.Notify.BotToken != "" {
		if err := checkToken(c.Notify.BotToken, EnvBotToken, "bot_token", "xoxb-",
			"it is optional: set it to post notices as the app's bot user (scopes chat:write and im:write)"); err != nil {
			return err
		}
	}
	if u := c.Notify.WebhookURL; u != "" {
		// Never echoed: a webhook URL often embeds its secret.
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return errors.New("notify webhook_url is not an http(s) URL (not shown here: webhook URLs usually hold a secret); check [notify] webhook_url")
		}
	}
	if k := c.Allowlist.Secret; k != "" && len(k) < 16 {
		return fmt.Errorf("allowlist secret is %d characters: use at least 16 random ones (e.g. openssl rand -hex 32), in %s or [allowlist] secret", len(k), EnvAllowKey)
	}
	if slack {
		return c.validateSlack()
	}
	return nil
}

// validateSlack checks both tokens, of the right kind, and the API URL.
func (c *Config) validateSlack() error {
	if err := checkToken(c.Slack.AppToken, EnvAppToken, "app_token", "xapp-",
		"create an app-level token with the connections:write scope under Basic Information → App-Level Tokens"); err != nil {
		return err
	}
	return c.validateUserToken()
}

// validateUserToken checks the user token and the API URL: what the
// commands that call the Web API only (scan, back-tests) need; they need no
// app token.
func (c *Config) validateUserToken() error {
	if err := checkToken(c.Slack.UserToken, EnvUserToken, "user_token", "xoxp-",
		"install the app as a workspace admin or owner and copy the User OAuth Token under OAuth & Permissions"); err != nil {
		return err
	}
	u := c.Slack.APIURL
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return fmt.Errorf("%s %q is not an http(s) URL (the default is https://slack.com/api/)", EnvAPIURL, u)
	}
	return nil
}

// APIURL returns the Slack API URL with the trailing slash slack-go needs.
func (c *Config) APIURL() string {
	if strings.HasSuffix(c.Slack.APIURL, "/") {
		return c.Slack.APIURL
	}
	return c.Slack.APIURL + "/"
}

var tokenKinds = map[string]string{
	"xapp-": "an app-level token",
	"xoxp-": "a user token",
	"xoxb-": "a bot token",
	"xoxa-": "a legacy workspace token",
	"xoxe-": "a refresh or config token",
}

func checkToken(tok, env, key, prefix, how string) error {
	if tok == "" {
		return fmt.Errorf("%s is not set: %s, then set %s or [slack] %s", env, how, env, key)
	}
	if strings.HasPrefix(tok, prefix) && len(tok) > len(prefix)+8 && !strings.ContainsAny(tok, " \t\r\n\"'") {
		return nil
	}
	got := "it does not look like a Slack token"
	for p, kind := range tokenKinds {
		if strings.HasPrefix(tok, p) {
			got = "it is " + kind
		}
	}
	if strings.HasPrefix(tok, prefix) {
		got = "it is too short or contains spaces or quotes"
	}
	return fmt.Errorf("%s must be %s starting with %s, but %s: %s", env, tokenKinds[prefix], prefix, got, how)
}

// validUserID reports whether id looks like a Slack user id.
func validUserID(id string) bool {
	if len(id) < 3 || len(id) > 20 || (id[0] != 'U' && id[0] != 'W') {
		return false
	}
	for _, r := range id[1:] {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
