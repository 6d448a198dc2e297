// Package cli builds securechat's command tree: the admin commands (regex,
// leaks, check), the daemon (run) and its helpers. Commands are constructed,
// not registered globally, and write to the writers they are given, so tests
// drive the real tree.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/service"
	"github.com/securechat/securechat/store"
)

// Version is the program's version, set at build time with
// -ldflags "-X github.com/securechat/securechat/cli.Version=v1.2.3".
var Version = "dev"

// Deps is what the commands take from the outside world. Tests fill it with
// buffers, a fixed clock and a fake environment.
type Deps struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	Now    func() time.Time
	// Username names the OS user running the command, for the record of
	// who cancelled a deletion [$USER].
	Username func() string
}

// OSDeps returns the Deps of a real process.
func OSDeps() Deps {
	return Deps{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now,
		Username: func() string {
			if u, err := user.Current(); err == nil {
				return u.Username
			}
			return os.Getenv("USER")
		}}
}

// actor is who runs the command, for the audit log: os:NAME.
func (a *app) actor() service.Actor { return service.OSUser(a.username()) }

// service returns the admin use cases over s, as this command's user.
func (a *app) service(s *store.Store) *service.Service {
	return service.New(s, nil, a.Now)
}

// username names who runs the command.
func (a *app) username() string {
	if a.Username != nil {
		if u := a.Username(); u != "" {
			return u
		}
	}
	if u := a.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// app is the state the commands share: the dependencies and the
// configuration resolved for the command being run.
type app struct {
	Deps
	cfg Config
}

// annotNeedsSlack marks a command that talks to Slack: its configuration
// must also hold both tokens and a usable API URL.
const annotNeedsSlack = "securechat/needs-slack"

// NewRootCmd returns the securechat command tree.
func NewRootCmd(d Deps) *cobra.Command {
	// A Deps left partly empty takes the process's own for what is missing.
	os := OSDeps()
	if d.Stdin == nil {
		d.Stdin = os.Stdin
	}
	if d.Stdout == nil {
		d.Stdout = os.Stdout
	}
	if d.Stderr == nil {
		d.Stderr = os.Stderr
	}
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	if d.Now == nil {
		d.Now = os.Now
	}
	// Username stays nil when not given: the user is then $USER, read
	// through Getenv.
	a := &app{Deps: d}
	root := &cobra.Command{
		Use:   "securechat",
		Short: "Find secrets posted to Slack, record them and delete the messages",
		Long: `securechat watches Slack messages over Socket Mode, matches them against the regexes
its admins keep, records each leak (masked, never in full) and deletes the leaking message.

Configuration is read in this order, later winning: defaults, the TOML file given by
--config or SECURECHAT_CONFIG, environment variables, then flags.`,
		Example: `  securechat demo                       # see it work, no Slack needed
  securechat regex add '\b4[0-9]{15}\b' --description "Visa card"
  securechat leaks list --since 24h
  git diff | securechat check           # exit 1 if something leaks
  securechat run --config /etc/securechat.toml`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) (err error) {
			a.cfg, err = resolveConfig(cmd, a.Getenv, a.Stderr)
			if err != nil && needsNoConfig(cmd) {
				return nil // help, completion and manifest work whatever the settings
			}
			return err
		},
	}
	root.SetIn(d.Stdin)
	root.SetOut(d.Stdout)
	root.SetErr(d.Stderr)
	root.SetFlagErrorFunc(flagError)
	pf := root.PersistentFlags()
	pf.String("config", "", "TOML config file (env "+EnvConfig+")")
	pf.String("db", "", "SQLite database file, or a postgres:// URL for replicas (env "+EnvDB+", default $STATE_DIRECTORY/securechat.db under systemd, else ~/.local/state/securechat/securechat.db)")
	pf.String("log-level", "", "log level: trace, debug, info, warn, error (env "+EnvLogLevel+")")
	pf.String("log-format", "", "log format: console or json (env "+EnvLogFormat+")")

	root.AddCommand(
		newRegexCmd(a),
		newLeaksCmd(a),
		newAuditCmd(a),
		newCheckCmd(a),
		newRunCmd(a),
		newScanCmd(a),
		newDemoCmd(a),
		newManifestCmd(a),
		newMigrateCmd(a),
	)
	return root
}

// needsNoConfig reports whether cmd works without a valid configuration.
func needsNoConfig(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		switch c.Name() {
		case "help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd, "manifest":
			return true
		}
	}
	return false
}

// shortFlagTypo matches pflag's error for an unknown one-letter flag (-x).
var shortFlagTypo = regexp.MustCompile(`in -.$`)

// flagError turns a flag parsing error into a usage error. A pattern or a
// text that starts with "-" (every private-key rule does) reads as a flag:
// the hint shows the "--" form that passes it as an argument.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	// "bad flag syntax: -----BEGIN", or "unknown shorthand flag: 'B' in
	// -BEGIN" for a word, not a mistyped one-letter flag.
	if strings.HasPrefix(msg, "bad flag syntax") || (strings.HasPrefix(msg, "unknown shorthand flag") && !shortFlagTypo.MatchString(msg)) {
		arg := "ARG"
		if cmd.Name() == "add" || cmd.Name() == "test" {
			arg = "PATTERN"
		} else if cmd.Name() == "check" {
			arg = "TEXT"
		}
		return &usageError{cmd: cmd.CommandPath(), err: err,
			hint: fmt.Sprintf("an argument that starts with - must come after --, which ends the flags: %s [flags] -- '-%s'", cmd.CommandPath(), arg)}
	}
	return &usageError{cmd: cmd.CommandPath(), err: err}
}

// groupCmd returns a command that only groups subcommands: with no argument
// it prints its help; an unknown subcommand is an error (exit 2) with
// suggestions, never help and exit 0, which scripts would take as output.
func groupCmd(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.SuggestionsMinimumDistance = 2
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if sugg := c.SuggestionsFor(args[0]); len(sugg) > 0 {
			msg += "; did you mean " + strings.Join(sugg, " or ") + "?"
		}
		return &usageError{cmd: c.CommandPath(), err: errors.New(msg)}
	}
	return cmd
}

// How a command opens the database.
type openMode int

const (
	// openRead: read only, never created or migrated (list, stats, check).
	openRead openMode = iota
	// openWrite: an existing database, migrated if need be.
	openWrite
	// openCreate: created when missing (regex add and import, run).
	openCreate
)

// openStore opens the configured database as mode says. Without a
// configured database, a securechat.db in the current directory (where
// earlier releases put it) is refused with a hint rather than silently
// replaced by an empty database elsewhere.
func (a *app) openStore(ctx context.Context, mode openMode, opts ...store.Option) (*store.Store, error) {
	path := a.cfg.DB
	if a.cfg.dbErr != nil {
		return nil, a.cfg.dbErr
	}
	if a.cfg.dbFrom == fromDefault {
		if _, err := os.Stat(store.DefaultPath); err == nil {
			abs, _ := filepath.Abs(store.DefaultPath)
			if abs != path {
				return nil, &hintError{err: fmt.Errorf("no database is configured, and %s exists in the current directory, but the default database is now %s", abs, path),
					hint: fmt.Sprintf("to keep using %s, set it once for every command: export %s=%s (or db = \"%s\" in the config file); or move it to %s", abs, EnvDB, abs, abs, path)}
			}
		}
	}
	if mode != openCreate && !store.IsPostgres(path) {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, &hintError{err: fmt.Errorf("no database at %s", path),
				hint: fmt.Sprintf("point --db or %s at the daemon's database, or add a regex first with 'securechat regex add'", EnvDB)}
		}
	}
	if mode == openRead {
		s, err := store.OpenReadOnly(ctx, path, store.WithClock(a.Now))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &hintError{err: fmt.Errorf("no securechat database at %s", store.Redact(path)),
				hint: fmt.Sprintf("point --db or %s at the daemon's database, or add a regex first with 'securechat regex add'", EnvDB)}
		}
		return s, err
	}
	s, err := store.Open(ctx, path, append([]store.Option{store.WithClock(a.Now)}, opts...)...)
	if err != nil {
		return nil, err
	}
	// Once after an upgrade: excerpts stored under an older masking policy.
	if _, err := s.RemaskExcerpts(ctx, detect.Remask); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Run executes the command tree with args and returns the process exit code.
// Errors are printed to d.Stderr with what to do about them.
//
// An interrupt (the first SIGINT or SIGTERM, which cancels ctx) ends every
// command with ExitInterrupted, except 'run', for which it is the normal
// stop (0 once it stopped cleanly). 'run', 'demo' and 'scan' finish what is
// in flight first (Run waits for them); any other command gets
// interruptGrace to return and is then left behind, so that one waiting on
// stdin or on a database another process keeps locked never ignores the
// interrupt. Leaving it is safe: a write it had begun is one SQLite
// transaction, which the next open rolls back.
func Run(ctx context.Context, args []string, d Deps) int {
	root := NewRootCmd(d)
	root.SetArgs(args)
	finishes := false
	if cmd, _, err := root.Find(args); err == nil {
		finishes = cmd.Annotations[annotInterrupt] == interruptFinishes
	}
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		if finishes {
			err = <-done
			break
		}
		t := time.NewTimer(interruptGrace)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			err = ctx.Err()
		}
	}
	if err == nil && ctx.Err() != nil && !finishes {
		err = ctx.Err() // interrupted, even if it got to the end
	}
	if err == nil {
		return ExitOK
	}
	if ctx.Err() != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, errLeaksFound) {
		err = fmt.Errorf("%w (%v)", context.Canceled, err)
	}
	return report(d.Stderr, err)
}

// interruptGrace is how long Run waits, after an interrupt, for a command
// that does not finish work in flight to return by itself.
const interruptGrace = 2 * time.Second

// A command annotated annotInterrupt: interruptFinishes finishes what is
// in flight when interrupted, and Run waits for it.
const (
	annotInterrupt    = "securechat/interrupt"
	interruptFinishes = "finishes"
)
