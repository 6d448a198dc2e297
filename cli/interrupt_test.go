package cli

import (
	"context"
	"database/sql"
	"io"
	"strings"
	"testing"
	"time"
)

// TestFirstInterruptEndsEveryCommand: the first SIGINT (ctx cancelled)
// ends a command waiting on stdin or on a database another process keeps
// locked, with exit 130 and "interrupted"; what it was adding is not
// added. (Before, such a command ignored it: stdin until EOF, the lock
// until the 10 s busy timeout, then exit 2.)
func TestFirstInterruptEndsEveryCommand(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		stdin bool // stdin stays open, with nothing to read
		lock  bool // another connection holds the database's write lock
	}{
		{"check with no arguments", []string{"check"}, true, false},
		{"regex test reading stdin", []string{"regex", "test", "6759[0-9]{12}"}, true, false},
		{"regex import -", []string{"regex", "import", "-"}, true, false},
		{"regex add on a locked database", []string{"regex", "add", "AKIA[A-Z2-7]{16}"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustRun("regex", "add", "6759[0-9]{12}")
			stdin, w := io.Pipe()
			defer w.Close()
			if !tt.stdin {
				w.Close()
			}
			if tt.lock {
				db, err := sql.Open("sqlite3", e.db)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				conn, err := db.Conn(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
					t.Fatal(err)
				}
				defer conn.ExecContext(context.Background(), "ROLLBACK")
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			var out, errb strings.Builder
			d := Deps{Stdin: stdin, Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return e.vars[k] }, Now: func() time.Time { return e.now }}
			code := Run(ctx, append([]string{"--db", e.db}, tt.args...), d)
			if code != ExitInterrupted || !strings.Contains(errb.String(), "interrupted") {
				t.Errorf("exit %d, stderr %q; want 130 and 'interrupted'", code, errb.String())
			}
		})
	}
}
