package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var fixedNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// env is a test's world: a temp database and environment variables.
type env struct {
	t    *testing.T
	db   string
	vars map[string]string
	now  time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{t: t, db: filepath.Join(t.TempDir(), "securechat.db"), vars: map[string]string{}, now: fixedNow}
}

type result struct {
	stdout, stderr string
	code           int
}

// run drives the real command tree with args and stdin.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	return e.runCtx(context.Background(), stdin, args...)
}

// runCtx is run with a context (cancel it for a Ctrl-C).
func (e *env) runCtx(ctx context.Context, stdin string, args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	d := Deps{
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string { return e.vars[k] },
		Now:    func() time.Time { return e.now },
	}
	code := Run(ctx, append([]string{"--db", e.db}, args...), d)
	return result{out.String(), errb.String(), code}
}

func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run("", args...)
	if r.code != ExitOK {
		e.t.Fatalf("securechat %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./cli -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

const maestro = `.*(5018|5020|5038|6304|6759|6761|6763)[0-9]{8,15}.*`

func TestRegexAddListRm(t *testing.T) {
	e := newEnv(t)
	r := e.mustRun("regex", "add", maestro, "--description", "Maestro cards")
	if r.stdout != "1\n" {
		t.Errorf("regex add printed %q, want the id", r.stdout)
	}
	e.mustRun("regex", "add", `AKIA[A-Z2-7]{16}`, "-d", "AWS access key id")
	e.mustRun("regex", "disable", "2")

	r = e.mustRun("regex", "list", "--json")
	golden(t, "regex_list.json", r.stdout)
	var objs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &objs); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "pattern", "description"} {
		if _, ok := objs[0][k]; !ok {
			t.Errorf("regex JSON lacks %q", k)
		}
	}

	r = e.mustRun("regex", "list")
	golden(t, "regex_list.txt", r.stdout)

	r = e.run("", "regex", "add", maestro)
	if r.code != ExitError || !strings.Contains(r.stderr, "already exists as regex 1") {
		t.Errorf("duplicate add: exit %d, stderr %q", r.code, r.stderr)
	}

	r = e.run("", "regex", "rm", "1", "7")
	if r.code != ExitError || !strings.Contains(r.stderr, "Removed regex 1.") || !strings.Contains(r.stderr, "regex 7: not found") {
		t.Errorf("rm 1 7: exit %d, stderr %q", r.code, r.stderr)
	}
	r = e.mustRun("regex", "list", "--json")
	if strings.Contains(r.stdout, "Maestro") {
		t.Errorf("regex 1 still listed after rm: %s", r.stdout)
	}
}

func TestRegexAddRefusesBadPatterns(t *testing.T) {
	tests := []struct{ pattern, says string }{
		{".*", "empty string"},
		{"foo(", "missing closing )"},
		{"(?<=a)b", "RE2"},
		// Patterns that flag nearly every message: refused with the share.
		{"e", "of ordinary chat"},
		{".", "flags 100% of"},
		{".+", "flags 100% of"},
		{"[a-z]", "of ordinary chat"},
		{" ", "of ordinary chat"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			e := newEnv(t)
			r := e.run("", "regex", "add", tt.pattern)
			if r.code != ExitError || !strings.Contains(r.stderr, tt.says) || !strings.Contains(r.stderr, tt.pattern) {
				t.Errorf("exit %d, stderr %q; want exit 2 naming the pattern and saying %q", r.code, r.stderr, tt.says)
			}
			if strings.Contains(r.stderr, "+ instead of *") {
				t.Errorf("the error suggests a pattern that matches everything: %q", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
	// --force adds it anyway; an import skips such rules and says why.
	e := newEnv(t)
	if r := e.run("", "regex", "add", "--force", "[a-z]"); r.code != 0 || strings.TrimSpace(r.stdout) != "1" {
		t.Errorf("regex add --force: %+v", r)
	}
	r := e.run(".+\nAKIA[A-Z2-7]{16}\n[0-9]{4}\n", "regex", "import", "--format", "lines", "-")
	if r.code != ExitError || strings.Count(r.stdout, "skipped") != 2 || !strings.Contains(r.stdout, "of ordinary chat") || !strings.Contains(r.stderr, "1 imported") {
		t.Errorf("import of broad lines: %+v", r)
	}
}

func TestEmptyListsAndMissingDatabase(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "leaks", "list")
	if r.code != ExitError || !strings.Contains(r.stderr, "no database at") {
		t.Errorf("leaks list without a db: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(e.db); err == nil {
		t.Error("leaks list created a database")
	}
	e.mustRun("regex", "add", "abc[0-9]+")
	e.mustRun("regex", "rm", "1")
	if r := e.mustRun("regex", "list", "--json"); r.stdout != "[]\n" {
		t.Errorf("empty regex list --json = %q", r.stdout)
	}
	if r := e.mustRun("leaks", "list", "--json"); r.stdout != "[]\n" {
		t.Errorf("empty leaks list --json = %q", r.stdout)
	}
	if r := e.mustRun("regex", "list"); r.stdout != "" || !strings.Contains(r.stderr, "No regexes yet") {
		t.Errorf("empty regex list: %+v", r)
	}
}

// seedLeaks records leaks through the store as the daemon would.
func seedLeaks(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	clock := fixedNow.Add(-72 * time.Hour)
	s, err := store.Open(ctx, e.db, store.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{`(6759|6761)[0-9]{8,12}`, `AKIA[A-Z2-7]{16}`} { // regexes 1 and 2, which the leaks are of
		if _, err := s.AddRegex(ctx, p, ""); err != nil {
			t.Fatal(err)
		}
	}
	msgs := []struct {
		ch, user, ts, excerpt string
		regex                 int64
		age                   time.Duration
	}{
		{"C0GENERAL", "U0ALICE", "1764072000.000100", "6759********8453", 1, 72 * time.Hour},
		{"C0GENERAL", "U0BOB", "1764158400.000200", "AKIA************MPL2", 2, 30 * time.Hour},
		{"C0RANDOM", "U0ALICE", "1764234000.000300", "67********90", 1, 2 * time.Hour},
	}
	for _, m := range msgs {
		clock = fixedNow.Add(-m.age)
		if _, err := s.RecordLeak(ctx, store.Message{Channel: m.ch, User: m.user, TS: m.ts},
			[]store.Finding{{RegexID: m.regex, Rule: map[int64]string{1: "Maestro cards", 2: "AWS access key id"}[m.regex], Excerpt: m.excerpt, Start: 3, End: 19}}, true); err != nil {
			t.Fatal(err)
		}
	}
	due, _ := s.DueDeletions(ctx, fixedNow, 10)
	for _, d := range due[:2] { // attempted, as the deleter does
		if _, _, err := s.ClaimDeletion(ctx, d.ID, fixedNow, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkDeleted(ctx, due[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.FailDeletion(ctx, due[1].ID, "cant_delete_message"); err != nil {
		t.Fatal(err)
	}
}

func TestLeaksList(t *testing.T) {
	e := newEnv(t)
	seedLeaks(t, e)
	r := e.mustRun("leaks", "list", "--json")
	golden(t, "leaks_list.json", r.stdout)
	var objs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &objs); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "channel", "user", "ts", "regex_id", "status", "excerpt", "detected_at"} {
		if _, ok := objs[0][k]; !ok {
			t.Errorf("leak JSON lacks %q", k)
		}
	}
	r = e.mustRun("leaks", "list")
	golden(t, "leaks_list.txt", r.stdout)

	tests := []struct {
		args []string
		want []string // ts in output order
	}{
		{[]string{"--limit", "1"}, []string{"1764234000.000300"}},
		{[]string{"--channel", "C0GENERAL"}, []string{"1764158400.000200", "1764072000.000100"}},
		{[]string{"--since", "1d"}, []string{"1764234000.000300"}},
		{[]string{"--since", "36h"}, []string{"1764234000.000300", "1764158400.000200"}},
		{[]string{"--status", "failed"}, []string{"1764158400.000200"}},
		{[]string{"--status", "deleted"}, []string{"1764072000.000100"}},
		{[]string{"--regex", "1"}, []string{"1764234000.000300", "1764072000.000100"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := e.mustRun(append([]string{"leaks", "list", "--json"}, tt.args...)...)
			var got []struct{ TS string }
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatal(err)
			}
			var ts []string
			for _, g := range got {
				ts = append(ts, g.TS)
			}
			if strings.Join(ts, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", ts, tt.want)
			}
		})
	}
	for _, bad := range [][]string{{"--status", "gone"}, {"--since", "yesterday"}, {"--limit", "-3"}, {"--limit", "x"}} {
		r := e.run("", append([]string{"leaks", "list"}, bad...)...)
		if r.code != ExitError || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("leaks list %v: exit %d, stderr %q", bad, r.code, r.stderr)
		}
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "check", "x")
	if r.code != ExitError {
		t.Errorf("check without a database: exit %d", r.code)
	}
	e.mustRun("regex", "add", maestro, "-d", "Maestro cards")
	r = e.run("", "check", "hello")
	if r.code != ExitOK || r.stdout != "" {
		t.Errorf("clean check: %+v", r)
	}
	r = e.run("", "check", "lunch?", "my card is 6759649826438453")
	if r.code != ExitLeak || r.stdout != "line 2: regex 1 (Maestro cards): ************8453\n" {
		t.Errorf("leaking check: %+v", r)
	}
	if strings.Contains(r.stdout+r.stderr, "6759649826438453") {
		t.Error("check printed the secret")
	}
	stdin := "first line\r\nsecond 676100041090\nthird\nlast without newline 6759649826438453"
	r = e.run(stdin, "check", "--json")
	golden(t, "check.jsonl", r.stdout)
	if r.code != ExitLeak {
		t.Errorf("stdin check exit %d", r.code)
	}
	r = e.run("<tel:6759649826438453|6759649826438453>", "check", "--slack")
	if r.code != ExitLeak || strings.Count(r.stdout, "line 1") != 1 {
		t.Errorf("--slack check: %+v", r)
	}
	e.mustRun("regex", "disable", "1")
	r = e.run("", "check", "6759649826438453")
	if r.code != ExitError || !strings.Contains(r.stderr, "no enabled regex compiles") {
		t.Errorf("check with no enabled rules: %+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		args []string
		says string
	}{
		{[]string{"regex", "add"}, "give a PATTERN"},
		{[]string{"regex", "rm"}, "requires at least 1 arg"},
		{[]string{"nosuch"}, "unknown command"},
		{[]string{"leaks", "list", "--bogus"}, "unknown flag"},
		{[]string{"regex", "rm", "abc"}, "is not an id"},
	}
	for _, tt := range tests {
		r := e.run("", tt.args...)
		if r.code != ExitError || !strings.Contains(r.stderr, tt.says) || !strings.Contains(r.stderr, "help") && tt.says != "is not an id" {
			t.Errorf("%v: exit %d, stderr %q", tt.args, r.code, r.stderr)
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "securechat.toml")
	fileDB := filepath.Join(dir, "from-file.db")
	envDB := filepath.Join(dir, "from-env.db")
	flagDB := filepath.Join(dir, "from-flag.db")
	if err := os.WriteFile(cfgPath, []byte("db = \""+fileDB+"\"\n[log]\nlevel = \"debug\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(vars map[string]string, args ...string) result {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, Deps{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
			Getenv: func(k string) string { return vars[k] }, Now: time.Now})
		return result{out.String(), errb.String(), code}
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	run(nil, "--config", cfgPath, "regex", "add", "a[0-9]+")
	if !exists(fileDB) {
		t.Error("the config file's db was not used")
	}
	run(map[string]string{EnvConfig: cfgPath, EnvDB: envDB}, "regex", "add", "b[0-9]+")
	if !exists(envDB) {
		t.Error("SECURECHAT_DB did not override the file")
	}
	run(map[string]string{EnvConfig: cfgPath, EnvDB: envDB}, "--db", flagDB, "regex", "add", "c[0-9]+")
	if !exists(flagDB) {
		t.Error("--db did not override the environment")
	}
	if r := run(nil, "--config", filepath.Join(dir, "missing.toml"), "regex", "list"); r.code != ExitError || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("missing config: %+v", r)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[daemon]\nworkrs = 3\n"), 0o600)
	if r := run(nil, "--config", bad, "regex", "list"); r.code != ExitError || !strings.Contains(r.stderr, "daemon.workrs") {
		t.Errorf("unknown key: %+v", r)
	}
	os.WriteFile(bad, []byte("db = \n"), 0o600)
	if r := run(nil, "--config", bad, "regex", "list"); r.code != ExitError || !strings.Contains(r.stderr, "line 1") {
		t.Errorf("syntax error: %+v", r)
	}
	if r := run(nil, "--db", flagDB, "--log-level", "loud", "regex", "list"); r.code != ExitError || !strings.Contains(r.stderr, "log level") {
		t.Errorf("bad log level: %+v", r)
	}
	tokFile := filepath.Join(dir, "tokens.toml")
	os.WriteFile(tokFile, []byte("db = \""+fileDB+"\"\n[slack]\nuser_token = \"xoxp-1234567890-abc\"\n"), 0o644)
	if r := run(nil, "--config", tokFile, "regex", "list"); !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("world-readable token file not warned about: %+v", r)
	}
}

func TestConfigExampleIsValid(t *testing.T) {
	f, err := os.Open("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := Defaults()
	if err := c.LoadFile(f, "config.example.toml"); err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	if err := c.Validate(false); err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	if fmt.Sprintf("%+v", c) != fmt.Sprintf("%+v", Defaults()) { // nil and empty lists print alike
		t.Errorf("config.example.toml sets values other than the defaults it documents:\n%+v\n%+v", c, Defaults())
	}
}

func TestValidateSlack(t *testing.T) {
	good := Defaults()
	good.Slack.AppToken = "xapp-1-A0123-456-abcdef"
	good.Slack.UserToken = "xoxp-123-456-789-abcdef"
	if err := good.validateSlack(); err != nil {
		t.Fatalf("good tokens: %v", err)
	}
	tests := []struct {
		name      string
		app, user string
		says      []string
	}{
		{"no app token", "", good.Slack.UserToken, []string{"SLACK_APP_TOKEN is not set", "connections:write"}},
		{"bot token as app token", "xoxb-123-456-abcdefghijk", good.Slack.UserToken, []string{"SLACK_APP_TOKEN", "bot token", "xapp-"}},
		{"no user token", good.Slack.AppToken, "", []string{"SLACK_USER_TOKEN is not set", "User OAuth Token"}},
		{"bot token as user token", good.Slack.AppToken, "xoxb-123-456-abcdefghijk", []string{"SLACK_USER_TOKEN", "bot token", "xoxp-"}},
		{"quoted token", good.Slack.AppToken, "xoxp-123-456-789-abc\"", []string{"quotes"}},
		{"garbage", "hunter2", good.Slack.UserToken, []string{"does not look like a Slack token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.Slack.AppToken, c.Slack.UserToken = tt.app, tt.user
			err := c.validateSlack()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
			if tt.user != "" && len(tt.user) > 10 && strings.Contains(err.Error(), tt.user) {
				t.Errorf("error repeats the token: %q", err)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"30m", fixedNow.Add(-30 * time.Minute)},
		{"7d", fixedNow.Add(-7 * 24 * time.Hour)},
		{"2w", fixedNow.Add(-14 * 24 * time.Hour)},
		{"1.5d", fixedNow.Add(-36 * time.Hour)},
		{"2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-11-01T10:00:00Z", time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, fixedNow)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "d", "-3h", "yesterday", "3x"} {
		if _, err := parseSince(bad, fixedNow); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"7d", "1h30m", "2026-11-01", "w", "1e9d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSince(s, fixedNow)
		if err == nil && got.After(fixedNow) && !strings.Contains(s, "-") {
			t.Fatalf("parseSince(%q) = %v, in the future", s, got)
		}
	})
}

func TestCheckFailsWhenNoRuleCompiles(t *testing.T) {
	e := newEnv(t)
	s, err := store.Open(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	// Stored behind the CLI's back (by hand, or by an older version).
	if _, err := s.AddRegex(context.Background(), "broken(", ""); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r := e.run("", "check", "6759649826438453")
	if r.code != ExitError || !strings.Contains(r.stderr, "warning: skipping regex 1") || !strings.Contains(r.stderr, "no enabled regex compiles") {
		t.Errorf("check with only a broken rule: %+v", r)
	}
}

// TestResolveConfig checks the one resolution of the configuration, with a
// command's own flags: defaults < file < environment < flags, validated
// once, Slack settings checked only for a command that talks to Slack.
func TestResolveConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.toml")
	body := "db = \"" + filepath.Join(dir, "file.db") + "\"\n[daemon]\nworkers = 3\nqueue_size = 9\n[log]\nlevel = \"debug\"\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	resolve := func(vars map[string]string, args ...string) (Config, error) {
		t.Helper()
		root := NewRootCmd(Deps{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard,
			Getenv: func(k string) string { return vars[k] }, Now: time.Now})
		cmd, rest, err := root.Find(args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatal(err)
		}
		return resolveConfig(cmd, func(k string) string { return vars[k] }, io.Discard)
	}
	tokens := map[string]string{EnvAppToken: "xapp-1-A1-123456789-abc", EnvUserToken: "xoxp-123456789-abc", "HOME": "/home/ann"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range tokens {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	c, err := resolve(with(map[string]string{EnvLogLevel: "warn"}), "run", "--config", cfgPath, "--workers", "7", "--monitor")
	if err != nil {
		t.Fatal(err)
	}
	if c.Daemon.Workers != 7 || c.Daemon.QueueSize != 9 || c.Log.Level != "warn" || c.Daemon.Mode != bot.ModeMonitor || c.dbFrom != fromFile {
		t.Errorf("run: workers %d (flag 7), queue %d (file 9), level %s (env warn), mode %s, db from %s",
			c.Daemon.Workers, c.Daemon.QueueSize, c.Log.Level, c.Daemon.Mode, c.dbFrom)
	}
	if _, err := resolve(with(nil), "run", "--workers", "0"); err == nil || !strings.Contains(err.Error(), "workers = 0") {
		t.Errorf("a bad run flag was not validated: %v", err)
	}
	if _, err := resolve(map[string]string{"HOME": "/home/ann"}, "run"); err == nil || !strings.Contains(err.Error(), EnvAppToken) {
		t.Errorf("run without tokens: %v", err)
	}
	if c, err := resolve(map[string]string{"HOME": "/home/ann"}, "regex", "list"); err != nil || c.dbFrom != fromDefault ||
		c.DB != "/home/ann/.local/state/securechat/securechat.db" {
		t.Errorf("regex list needs no tokens: %v (db %s from %s)", err, c.DB, c.dbFrom)
	}
	if c, _ := resolve(map[string]string{EnvDB: "/tmp/x.db"}, "regex", "list"); c.dbFrom != fromEnv {
		t.Errorf("db from %s, want the environment", c.dbFrom)
	}
	if c, _ := resolve(map[string]string{EnvDB: "/tmp/x.db"}, "regex", "list", "--db", "/tmp/y.db"); c.dbFrom != fromFlag || c.DB != "/tmp/y.db" {
		t.Errorf("db %s from %s, want /tmp/y.db from the flag", c.DB, c.dbFrom)
	}
	if c, err := resolve(map[string]string{}, "demo"); err != nil || c.dbErr == nil {
		t.Errorf("without HOME the demo still runs (%v) and a database command is told why (%v)", err, c.dbErr)
	}
	def, bd := Defaults(), bot.Defaults()
	if def.Notify.AuthorMessage != bd.Notify.AuthorMessage || def.Daemon.Workers != bd.Workers || def.Daemon.RetryMax.Duration != bd.RetryMax {
		t.Error("the CLI's defaults differ from the daemon's")
	}
}

// TestLeaksListShowsCachedNames: with names the daemon cached, leaks list
// shows #channel and @user, --channel takes a #name, and an unknown name is
// a clear error; without them it degrades to ids (the golden files).
func TestLeaksListShowsCachedNames(t *testing.T) {
	e := newEnv(t)
	seedLeaks(t, e)
	ctx := context.Background()
	s, err := store.Open(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetNames(ctx, store.NameConversation, map[string]string{"C0GENERAL": "general"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNames(ctx, store.NameUser, map[string]string{"U0ALICE": "alice"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r := e.mustRun("leaks", "list", "--channel", "#general")
	if !strings.Contains(r.stdout, "#general") || !strings.Contains(r.stdout, "@alice") || !strings.Contains(r.stdout, "U0BOB") ||
		strings.Contains(r.stdout, "C0RANDOM") || strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("leaks list --channel #general:\n%s", r.stdout)
	}
	r = e.mustRun("leaks", "list", "--json", "--channel", "#general")
	if !strings.Contains(r.stdout, `"channel_name": "general"`) || !strings.Contains(r.stdout, `"user_name": "alice"`) {
		t.Errorf("JSON lacks the names:\n%s", r.stdout)
	}
	r = e.run("", "leaks", "list", "--channel", "#nowhere")
	if r.code != ExitError || !strings.Contains(r.stderr, "no conversation of that name") || !strings.Contains(r.stderr, "channel id") {
		t.Errorf("unknown #name: exit %d, %q", r.code, r.stderr)
	}
}

func TestAdminsSetting(t *testing.T) {
	c := Defaults()
	c.LoadEnv(func(k string) string {
		if k == EnvAdmins {
			return "U0ADMIN0001, W0GRIDADMIN1"
		}
		return ""
	})
	if strings.Join(c.Slack.Admins, "|") != "U0ADMIN0001|W0GRIDADMIN1" {
		t.Fatalf("admins from %s = %q", EnvAdmins, c.Slack.Admins)
	}
	if err := c.Validate(false); err != nil {
		t.Fatalf("valid admins refused: %v", err)
	}
	for _, bad := range []string{"bogus", "u0admin0001", "C0GENERAL01", "@alice", "U"} {
		c := Defaults()
		c.Slack.Admins = []string{bad}
		if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), "Copy member ID") {
			t.Errorf("admins = [%q]: %v; want a refusal that says where to find the id", bad, err)
		}
	}
	c = Defaults()
	c.Notify.NoisyReports = -1
	if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), "noisy_reports") {
		t.Errorf("noisy_reports = -1: %v", err)
	}
}
