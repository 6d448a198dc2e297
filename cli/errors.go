package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/securechat/securechat/store"
)

// Exit codes, the same for every command.
const (
	// ExitOK: the command did what was asked (check: nothing leaks).
	ExitOK = 0
	// ExitLeak: check found at least one leak.
	ExitLeak = 1
	// ExitError: the command failed; stderr says why and what to do.
	ExitError = 2
	// ExitInterrupted: stopped by a second SIGINT/SIGTERM.
	ExitInterrupted = 130
)

// errLeaksFound makes check exit with ExitLeak without printing an error.
var errLeaksFound = errors.New("leaks found")

// usageError is a mistake in the command line.
type usageError struct {
	cmd  string
	err  error
	hint string // "" for the default: run CMD --help
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// hintError is an error that knows what the user should do about it.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// report prints err with a hint and returns the exit code for it. It is the
// one place where errors become exit codes.
func report(w io.Writer, err error) int {
	if errors.Is(err, errLeaksFound) {
		return ExitLeak
	}
	if errors.Is(err, context.Canceled) {
		// What the command said about it, when it said more.
		msg := strings.TrimSuffix(strings.TrimSuffix(err.Error(), ": "+context.Canceled.Error()), context.Canceled.Error())
		if msg = strings.Trim(msg, " :()"); msg == "" {
			msg = "interrupted"
		}
		fmt.Fprintf(w, "securechat: %s\n", msg)
		return ExitInterrupted
	}
	fmt.Fprintf(w, "securechat: %s\n", err.Error())
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(w, "hint: %s\n", hint)
	}
	return ExitError
}

// hintFor returns the one hint for err: what to do next.
func hintFor(err error) string {
	var ue *usageError
	var he *hintError
	msg := err.Error()
	switch {
	case errors.As(err, &he):
		return he.hint
	case errors.As(err, &ue) && ue.hint != "":
		return ue.hint
	case errors.As(err, &ue):
		return fmt.Sprintf("run '%s --help' for usage", ue.cmd)
	case strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
		strings.HasPrefix(msg, "requires ") || strings.HasPrefix(msg, "invalid argument"):
		return "run 'securechat --help' for usage"
	case errors.Is(err, store.ErrForeign):
		return "securechat never adds its tables to another application's database: point --db or " + EnvDB + " at securechat's own file"
	case errors.Is(err, store.ErrNewer):
		return "install the securechat release that wrote it (or a newer one); this release cannot read it safely"
	case errors.Is(err, store.ErrOldSchema):
		return "the database is from an earlier release: any command that writes (or 'securechat run') upgrades it once; read-only commands never change it"
	case errors.Is(err, store.ErrBusy):
		return fmt.Sprintf("another process kept the database locked for over %s; retry, and look for a stuck sqlite3 shell or backup job (fuser DBFILE)", store.DefaultBusyTimeout)
	case errors.Is(err, store.ErrNotDatabase):
		return "check --db / SECURECHAT_DB points at securechat's database; a damaged file can be salvaged with: sqlite3 DBFILE .recover | sqlite3 NEWFILE"
	case errors.Is(err, store.ErrNotFound):
		return "'securechat regex list', 'securechat leaks list' and 'securechat leaks allowlist' show the ids that exist"
	}
	return ""
}
