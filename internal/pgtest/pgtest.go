// Package pgtest runs a package's tests a second time on PostgreSQL: the
// test binary runs its tests on SQLite, then itself again with a throwaway
// PostgreSQL database, created before and dropped after.
//
// The server is SECURECHAT_TEST_POSTGRES (a URL; any database on the
// server, used only to create the throwaway one). Unset, the default
// (postgres@127.0.0.1:5432, database test) is tried and the PostgreSQL run
// is skipped with a line saying so when it does not answer; set, a server
// that does not answer fails the run. "off" skips it.
package pgtest

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
)

const (
	// EnvURL names the PostgreSQL server the tests use.
	EnvURL = "SECURECHAT_TEST_POSTGRES"
	// DefaultURL is the server tried when EnvURL is not set.
	DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	// envBase carries the throwaway database's URL to the second run.
	envBase = "SECURECHAT_TEST_PG_BASE"
)

// Main runs m, then, unless this is the second run or fuzzing, runs the
// test binary again on a throwaway database of the server; setBase
// receives the throwaway database's URL in the second run. It returns the
// exit code.
func Main(m *testing.M, pkg string, setBase func(string)) int {
	if base := os.Getenv(envBase); base != "" {
		setBase(base)
		return m.Run()
	}
	code := m.Run()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return code
	}
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		return code
	}
	server, required := os.Getenv(EnvURL), true
	switch server {
	case "off":
		return code
	case "":
		server, required = DefaultURL, false
	}
	base, drop, err := Create(server, pkg)
	if err != nil {
		if required {
			fmt.Fprintf(os.Stderr, "pgtest: %s=%s: %v\n", EnvURL, server, err)
			return 1
		}
		fmt.Printf("pgtest: no PostgreSQL at %s (%v): the PostgreSQL run of %s is skipped; set %s to a server's URL to run it\n", DefaultURL, err, pkg, EnvURL)
		return code
	}
	defer drop()
	fmt.Printf("pgtest: %s again, on PostgreSQL\n", pkg)
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), envBase+"="+base)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: the PostgreSQL run of %s failed: %v\n", pkg, err)
		return 1
	}
	return code
}

// Create makes a throwaway database on the server and returns its URL and
// a function that drops it.
func Create(server, pkg string) (string, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", server)
	if err != nil {
		return "", nil, err
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		return "", nil, err
	}
	label := strings.ToLower(strings.NewReplacer("/", "_", ".", "_", "-", "_").Replace(pkg))
	if len(label) > 28 {
		label = label[:28] // PostgreSQL's names are at most 63 bytes
	}
	name := fmt.Sprintf("securechat_test_%s_%d_%d", label, os.Getpid(), time.Now().UnixNano()%1e6)
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create a throwaway database: %w", err)
	}
	u, err := url.Parse(server)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: drop %s: %v\n", name, err)
		}
		admin.Close()
	}
	return u.String(), drop, nil
}

// Database returns the URL of a throwaway database for one test, dropped
// when the test ends. Without a server it skips the test, unless EnvURL
// is set (then it fails).
func Database(t testing.TB) string {
	t.Helper()
	server, required := os.Getenv(EnvURL), true
	switch server {
	case "off":
		t.Skip("PostgreSQL is off (" + EnvURL + "=off)")
	case "":
		server, required = DefaultURL, false
	}
	u, drop, err := Create(server, strings.ReplaceAll(t.Name(), "/", "_"))
	if err != nil {
		if required {
			t.Fatalf("PostgreSQL at %s: %v", server, err)
		}
		t.Skipf("no PostgreSQL at %s (%v); set %s to run this test", server, err, EnvURL)
	}
	t.Cleanup(drop)
	return u
}
