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
	cmd string
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// report prints err with a hint and returns the exit code for it. It is the
// one place where errors become exit codes.
func report(w io.Writer, err error) int {
	if errors.Is(err, errLeaksFound) {
		return ExitLeak
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "securechat: interrupted")
		return ExitInterrupted
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
		strings.HasPrefix(msg, "requires ") || strings.HasPrefix(msg, "invalid argument") {
		msg += "\nRun 'securechat --help' for usage."
	}
	fmt.Fprintf(w, "securechat: %s\n", msg)
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(w, "hint: %s\n", hint)
	}
	return ExitError
}

func hintFor(err error) string {
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		return fmt.Sprintf("run '%s --help' for usage", ue.cmd)
	case errors.Is(err, store.ErrBusy):
		return fmt.Sprintf("another process kept the database locked for over %s; retry, and look for a stuck sqlite3 shell or backup job (fuser DBFILE)", store.DefaultBusyTimeout)
	case errors.Is(err, store.ErrNotDatabase):
		return "check --db / SECURECHAT_DB points at securechat's database; a damaged file can be salvaged with: sqlite3 DBFILE .recover | sqlite3 NEWFILE"
	case errors.Is(err, store.ErrNotFound):
		return "'securechat regex list', 'securechat leaks list' and 'securechat leaks allowlist' show the ids that exist"
	}
	return ""
}
