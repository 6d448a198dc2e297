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
	"time"

	"github.com/spf13/cobra"

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
}

// OSDeps returns the Deps of a real process.
func OSDeps() Deps {
	return Deps{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now}
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
			return err
		},
	}
	root.SetIn(d.Stdin)
	root.SetOut(d.Stdout)
	root.SetErr(d.Stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd.CommandPath(), err: err}
	})
	pf := root.PersistentFlags()
	pf.String("config", "", "TOML config file (env "+EnvConfig+")")
	pf.String("db", "", "SQLite database file (env "+EnvDB+", default "+store.DefaultPath+")")
	pf.String("log-level", "", "log level: trace, debug, info, warn, error (env "+EnvLogLevel+")")
	pf.String("log-format", "", "log format: console or json (env "+EnvLogFormat+")")

	root.AddCommand(
		newRegexCmd(a),
		newLeaksCmd(a),
		newCheckCmd(a),
		newRunCmd(a),
		newDemoCmd(a),
		newManifestCmd(a),
	)
	return root
}

// openStore opens the configured database. With mustExist, a missing file is
// an error instead of a new empty database (read-only commands use it).
func (a *app) openStore(ctx context.Context, mustExist bool) (*store.Store, error) {
	if mustExist {
		if _, err := os.Stat(a.cfg.DB); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no database at %s: point --db or %s at the daemon's database, or add a regex first with 'securechat regex add'", a.cfg.DB, EnvDB)
		}
	}
	return store.Open(ctx, a.cfg.DB, store.WithClock(a.Now))
}

// Run executes the command tree with args and returns the process exit code.
// Errors are printed to d.Stderr with what to do about them.
func Run(ctx context.Context, args []string, d Deps) int {
	root := NewRootCmd(d)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	return report(d.Stderr, err)
}
