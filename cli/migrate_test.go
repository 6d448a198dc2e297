package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/internal/pgtest"
	"github.com/securechat/securechat/store"
)

// TestMigrateToPostgres copies a SQLite database into PostgreSQL with the
// real command tree, then reads it back there with 'leaks list' and
// 'regex list'; a second migrate into the same database is refused.
func TestMigrateToPostgres(t *testing.T) {
	e := newEnv(t)
	if r := e.run("", "migrate", "--to", "/tmp/other.db"); r.code != ExitError || !strings.Contains(r.stderr, "is not a PostgreSQL URL") {
		t.Errorf("migrate --to a path: %d %s", r.code, r.stderr)
	}
	url := pgtest.Database(t)
	seedLeaks(t, e)
	// A daemon running on the source (a recent heartbeat) is refused:
	// what it records after the copy began would stay behind.
	st, err := store.Open(context.Background(), e.db, store.WithInstance("live"), store.WithClock(func() time.Time { return e.now }))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Beat(context.Background(), "host", 1, 2); err != nil {
		t.Fatal(err)
	}
	if r := e.run("", "migrate", "--to", url); r.code != ExitError || !strings.Contains(r.stderr, "a daemon is running") {
		t.Errorf("migrate beside a running daemon: %d %s", r.code, r.stderr)
	}
	if err := st.StopInstance(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r := e.mustRun("migrate", "--to", url)
	for _, want := range []string{"regexes           2       2", "leaks             3       3", "deletions         3       3", "every count matches"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, r.stdout)
		}
	}
	pg := &env{t: t, db: url, vars: map[string]string{}, now: e.now}
	lite := e.mustRun("leaks", "list", "--json")
	if got := pg.mustRun("leaks", "list", "--json"); got.stdout != lite.stdout {
		t.Errorf("leaks on PostgreSQL:\n%s\nwant (SQLite's):\n%s", got.stdout, lite.stdout)
	}
	if got := pg.mustRun("regex", "list"); !strings.Contains(got.stdout, "AKIA[A-Z2-7]{16}") {
		t.Errorf("regex list on PostgreSQL:\n%s", got.stdout)
	}
	if r := e.run("", "migrate", "--to", url); r.code != ExitError || !strings.Contains(r.stderr, "holds securechat data already") {
		t.Errorf("a second migrate: %d %s", r.code, r.stderr)
	}
}
