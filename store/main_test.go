package store_test

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/securechat/securechat/internal/pgtest"
	"github.com/securechat/securechat/store"
)

// The store's tests are its conformance suite: they run once on SQLite and
// then, in a second run of this test binary, on PostgreSQL (see
// internal/pgtest for how the server is found). The second run gets a
// throwaway database, and each store opened in it a schema of its own.
// Tests of what only a SQLite file has (file modes, foreign files,
// upgrades of files written by earlier releases) call sqliteOnly.

// pgBase is the throwaway database's URL in the PostgreSQL run, else "".
var pgBase string

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, "store", func(base string) { pgBase = base }))
}

var schemas atomic.Int64

// newTarget returns where a new empty store is opened: a file in a new
// temporary directory, or a new schema in the throwaway database.
func newTarget(t testing.TB) string {
	t.Helper()
	if pgBase == "" {
		return filepath.Join(t.TempDir(), "sub", "securechat.db")
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), schemas.Add(1))
	db, err := sql.Open("pgx", pgBase)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE SCHEMA ` + name); err != nil {
		t.Fatalf("create schema %s: %v", name, err)
	}
	u, _ := url.Parse(pgBase)
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// sqliteOnly skips a test of what only the SQLite store has.
func sqliteOnly(t testing.TB) {
	t.Helper()
	if pgBase != "" {
		t.Skip("SQLite only")
	}
}

// exec runs one statement on the database behind target, outside the
// store: to arrange a state, or to stand in for a failure.
func rawDB(t testing.TB, target string) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite3", target+"?_busy_timeout=5000"
	if store.IsPostgres(target) {
		driver, dsn = "pgx", target
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rebind writes ? placeholders as PostgreSQL's $n when target is one.
func rebind(target, q string) string {
	if !store.IsPostgres(target) {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
