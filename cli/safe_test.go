package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securechat/securechat/store"
)

func writeFile(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) ruleCount() int {
	e.t.Helper()
	r := e.run("", "regex", "list", "--json")
	if r.code != ExitOK {
		return 0
	}
	return strings.Count(r.stdout, `"pattern"`)
}

// TestImportNeverTurnsTOMLIntoPatterns: the most common .gitleaks.toml
// extends gitleaks' defaults and has no [[rules]] of its own; read as a
// pattern list its table headers became character classes that deleted
// nearly every message.
func TestImportNeverTurnsTOMLIntoPatterns(t *testing.T) {
	dir := t.TempDir()
	extendOnly := "[extend]\nuseDefault = true\n\n[allowlist]\ndescription = \"ours\"\nregexes = ['''EXAMPLE''']\n"
	spaced := "title = \"x\"\n[[ rules ]]\nid = \"acme\"\nregex = '''acme_[a-z0-9]{32}'''\n"
	broken := "[[rules]]\nid = \"acme\"\nregex = '''acme_[a-z0-9]{32}\n"
	tests := []struct {
		name, file, body string
		args             []string
		code, rules      int
		says             string
	}{
		{"extend-only .gitleaks.toml", ".gitleaks.toml", extendOnly, nil, ExitError, 0, "does not ship"},
		{"the same TOML in a .txt", "rules.txt", extendOnly, nil, ExitError, 0, "does not ship"},
		{"[[ rules ]] with spaces", "rules.txt", spaced, nil, ExitOK, 1, "imported  acme"},
		{"TOML that does not parse", "rules.txt", broken, nil, ExitError, 0, "looks like a gitleaks (TOML) config"},
		{"--format gitleaks on a list", "list.txt", "acme_[a-z0-9]{32}\n", []string{"--format", "gitleaks"}, ExitError, 0, "list.txt"},
		{"--format lines keeps a list a list", "list.toml", "acme_[a-z0-9]{32}\n", []string{"--format", "lines"}, ExitOK, 1, "imported  line 1"},
		{"a bad --format", "list.txt", "x+\n", []string{"--format", "yaml"}, ExitError, 0, "--format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			path := writeFile(t, dir, tt.file, tt.body, 0o600)
			r := e.run("", append(append([]string{"regex", "import"}, tt.args...), path)...)
			if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.says) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", r.code, tt.code, tt.says, r.stdout, r.stderr)
			}
			if n := e.ruleCount(); n != tt.rules {
				t.Errorf("%d rules stored, want %d", n, tt.rules)
			}
		})
	}
}

// seedQueued records leaking messages straight in the test database: one
// found by regex 1 only, one by regexes 1 and 2.
func seedQueued(t *testing.T, e *env) {
	t.Helper()
	e.mustRun("regex", "add", `(6759|6761)[0-9]{12}`, "-d", "cards")
	e.mustRun("regex", "add", `AKIA[A-Z2-7]{16}`, "-d", "aws")
	st, err := store.Open(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, m := range []struct {
		ts string
		fs []store.Finding
	}{
		{"1.1", []store.Finding{{RegexID: 1, Excerpt: "************8453", Start: 0, End: 16, Action: "delete"}}},
		{"1.2", []store.Finding{{RegexID: 1, Excerpt: "************0000", Start: 0, End: 16, Action: "delete"},
			{RegexID: 2, Excerpt: "AK****************LE", Start: 20, End: 40, Action: "delete"}}},
		{"1.3", []store.Finding{{RegexID: 2, Excerpt: "AK****************L2", Start: 0, End: 20, Action: "delete"}}},
	} {
		if _, err := st.RecordLeak(context.Background(), store.Message{Channel: "C1", User: "U1", TS: m.ts}, m.fs, true); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLeaksCancelAndRuleChanges(t *testing.T) {
	e := newEnv(t)
	e.vars["USER"] = "alice"
	seedQueued(t, e)
	// leak 1 is the message 1.1; cancel it by leak id.
	r := e.mustRun("leaks", "cancel", "1")
	if strings.TrimSpace(r.stdout) != "1" {
		t.Errorf("leaks cancel 1 printed %q, want 1", r.stdout)
	}
	list := e.mustRun("leaks", "list", "--status", "cancelled", "--json").stdout
	if !strings.Contains(list, `"ts": "1.1"`) || strings.Contains(list, `"ts": "1.2"`) ||
		!strings.Contains(list, `"cancelled_by": "os:alice"`) || !strings.Contains(list, `"cancel_reason": "cancelled with 'securechat leaks cancel'"`) {
		t.Errorf("cancelled leaks: %s", list)
	}
	if log := e.mustRun("audit").stdout; !strings.Contains(log, "os:alice") || !strings.Contains(log, "deletions.cancel") || !strings.Contains(log, "leak:1") {
		t.Errorf("audit log after a cancel:\n%s", log)
	}
	// Removing regex 1 cancels nothing more: 1.2 still has regex 2's finding.
	if r := e.mustRun("regex", "rm", "1"); strings.Contains(r.stderr, "Cancelled") {
		t.Errorf("regex rm 1 cancelled a deletion regex 2 still justifies: %s", r.stderr)
	}
	// Switching regex 2 to monitor leaves nothing enforcing: 1.2 and 1.3 go.
	if r := e.mustRun("regex", "update", "2", "--action", "monitor"); !strings.Contains(r.stderr, "Cancelled 2 queued deletions") {
		t.Errorf("regex update to monitor: %s", r.stderr)
	}
	for _, bad := range [][]string{{"leaks", "cancel"}, {"leaks", "cancel", "1", "--all-pending"}, {"leaks", "resume"}} {
		if r := e.run("", bad...); r.code != ExitError {
			t.Errorf("%v: exit %d, want 2", bad, r.code)
		}
	}
	if r := e.run("", "leaks", "cancel", "99"); r.code != ExitError || !strings.Contains(r.stderr, "leak 99") {
		t.Errorf("cancel of a missing leak: %+v", r)
	}
	if r := e.mustRun("leaks", "cancel", "--all-pending"); strings.TrimSpace(r.stdout) != "0" {
		t.Errorf("nothing left to cancel, got %q", r.stdout)
	}
}

// TestReadOnlyCommandsNeverChangeTheDatabase: on a database of the previous
// release, list commands say to upgrade and leave the file as it is; on
// another application's database every command refuses, untouched.
func TestReadOnlyCommandsNeverChangeTheDatabase(t *testing.T) {
	e := newEnv(t)
	old, err := os.ReadFile("../store/testdata/v3.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.db, old, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"regex", "list"}, {"leaks", "list"}, {"leaks", "stats"}, {"check", "x"}} {
		r := e.run("", args...)
		if r.code != ExitError || !strings.Contains(r.stderr, "earlier release") {
			t.Errorf("%v on a schema-3 database: %+v", args, r)
		}
	}
	if now, _ := os.ReadFile(e.db); !bytes.Equal(now, old) {
		t.Fatal("a read-only command changed the database")
	}
	e.mustRun("regex", "add", `tok_[a-z0-9]{20}`) // a write upgrades it
	if r := e.mustRun("regex", "list", "--json"); strings.Count(r.stdout, `"pattern"`) != 4 {
		t.Errorf("after the upgrade: %s", r.stdout)
	}

	foreign := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite3", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(foreign)
	e.db = foreign
	for _, args := range [][]string{{"regex", "list"}, {"regex", "add", "tok_[a-z]{9}"}} {
		if r := e.run("", args...); r.code != ExitError || !strings.Contains(r.stderr, "not a securechat database") {
			t.Errorf("%v on another application's database: %+v", args, r)
		}
	}
	if after, _ := os.ReadFile(foreign); !bytes.Equal(before, after) {
		t.Error("securechat changed another application's database")
	}
}

func TestCLITraps(t *testing.T) {
	e := newEnv(t)
	e.mustRun("regex", "add", `tok_[a-z0-9]{20}`)
	dir := t.TempDir()
	tests := []struct {
		name  string
		args  []string
		code  int
		says  string
		never string
	}{
		{"mistyped subcommand", []string{"regex", "lsit"}, ExitError, "did you mean list", ""},
		{"mistyped leaks subcommand", []string{"leaks", "canel"}, ExitError, "did you mean cancel", ""},
		{"pattern starting with -", []string{"regex", "add", "-----BEGIN RSA PRIVATE KEY-----"}, ExitError, "-- '-PATTERN'", ""},
		{"the -- form works", []string{"regex", "add", "-d", "PEM", "--", "-----BEGIN RSA PRIVATE KEY-----"}, ExitOK, "Added regex", ""},
		{"text starting with -", []string{"check", "--", "-x tok_abcdefghij0123456789"}, ExitLeak, "", ""},
		{"one hint per error", []string{"regex", "add", "a", "b"}, ExitError, "hint:", ""},
		{"bad setting does not block manifest", []string{"--log-level", "bogus", "manifest"}, ExitOK, "", ""},
		{"nor completion", []string{"--log-level", "bogus", "completion", "bash"}, ExitOK, "", ""},
		{"nor help", []string{"--log-level", "bogus", "help"}, ExitOK, "", ""},
		{"but blocks the rest", []string{"--log-level", "bogus", "regex", "list"}, ExitError, "log level", ""},
		{"a bad webhook URL is never echoed", []string{"--config", writeFile(t, dir, "hook.toml", "[notify]\nwebhook_url = \"hxxps://hooks.example/T0/B0/s3cr3tv4lue\"\n", 0o600), "regex", "list"},
			ExitError, "webhook_url is not an http(s) URL", "s3cr3tv4lue"},
		{"an allowlist secret in a readable file is warned about", []string{"--config", writeFile(t, dir, "allow.toml", "[allowlist]\nsecret = \"0123456789abcdef0123\"\n", 0o644), "regex", "list"},
			ExitOK, "chmod 600", ""},
		{"a rule too costly to match", []string{"regex", "add", `[A-Za-z0-9+/]{1000}[A-Za-z0-9+/]{1000}`}, ExitError, "2002 instructions", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run("", tt.args...)
			out := r.stdout + r.stderr
			if r.code != tt.code || !strings.Contains(out, tt.says) || (tt.never != "" && strings.Contains(out, tt.never)) {
				t.Errorf("exit %d (want %d); output should say %q and never %q:\n%s", r.code, tt.code, tt.says, tt.never, out)
			}
			if strings.Count(r.stderr, "hint:") > 1 {
				t.Errorf("more than one hint:\n%s", r.stderr)
			}
		})
	}
}

// TestImportKeepsGitleaksMeaning: a rule gitleaks runs only under a file
// path, or only with its required companions, is imported disabled with the
// reason, never as a broader rule; with capture groups and no secretGroup
// the secret is the first group that matched, as in gitleaks.
func TestImportKeepsGitleaksMeaning(t *testing.T) {
	e := newEnv(t)
	body := `
[[rules]]
id = "k8s-secret-yaml"
regex = '''(?i)kind:\s*Secret'''
path = '''(?i)\.ya?ml$'''

[[rules]]
id = "composite"
regex = '''cmp_[a-z0-9]{20}'''
[[rules.required]]
id = "other"

[[rules]]
id = "acme-token"
regex = '''(?i)acme[_-]?token(\s*)[:=]\s*([a-z0-9]{32})'''
`
	path := writeFile(t, t.TempDir(), "rules.toml", body, 0o600)
	r := e.run("", "regex", "import", path)
	if r.code != ExitOK || strings.Count(r.stdout, "imported disabled:") != 2 {
		t.Fatalf("import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	list := e.run("", "regex", "list")
	if !strings.Contains(list.stderr, "regex 1 was disabled by securechat: imported disabled: gitleaks runs it only on files") ||
		!strings.Contains(list.stderr, "regex 2 was disabled by securechat: imported disabled: a composite rule") {
		t.Errorf("regex list does not say why:\n%s", list.stderr)
	}
	// Neither fires; the acme token is found, its secret the second group.
	c := e.run("", "check", "--json", "kind: Secret", "cmp_abcdefghij0123456789", "acme_token=abcdefghijklmnopqrstuvwxyz012345")
	if c.code != ExitLeak || strings.Count(c.stdout, "\n") != 1 || !strings.Contains(c.stdout, `"line":3`) || !strings.Contains(c.stdout, `"start":11`) {
		t.Errorf("check: exit %d\n%s%s", c.code, c.stdout, c.stderr)
	}
}

// TestImportedAllowlistsMeanWhatGitleaksMeans: regexTarget (secret, match,
// line), condition AND, allowlists needing a path (inert in chat), global
// allowlists with targetRules, [extend] disabledRules, and an override that
// only adds an allowlist to a rule imported before.
func TestImportedAllowlistsMeanWhatGitleaksMeans(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	first := writeFile(t, dir, "base.toml", `
[[rules]]
id = "old-rule"
regex = '''old_[a-z]{8}'''
[[rules]]
id = "ov"
regex = '''ov_[a-z]{8}'''
`, 0o600)
	e.mustRun("regex", "import", first)
	second := writeFile(t, dir, "team.toml", `
[extend]
disabledRules = ["old-rule", "never-imported"]

[[allowlists]]
targetRules = ["acme"]
regexes = ['''0{8}$''']

[[rules]]
id = "acme"
regex = '''acme_[a-z0-9]{8}'''
[[rules.allowlists]]
regexTarget = "line"
regexes = ['''(?i)example''']
[[rules.allowlists]]
regexTarget = "match"
condition = "AND"
regexes = ['''^acme_t''']
stopwords = ["test"]
[[rules.allowlists]]
condition = "AND"
regexes = ['''.''']
paths = ['''docs/''']

[[rules]]
id = "other"
regex = '''other_[a-z0-9]{8}'''

[[rules]]
id = "ov"
[[rules.allowlists]]
regexes = ['''^ov_allowed$''']
`, 0o600)
	r := e.run("", "regex", "import", second)
	for _, want := range []string{"disabled  old-rule → regex 1", "not found never-imported", "updated   ov → regex 2: 1 allowlist(s) added",
		"an allowlist is left out: its condition is AND and it needs a path"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("import output lacks %q:\n%s%s", want, r.stdout, r.stderr)
		}
	}
	before := e.mustRun("regex", "list", "--json").stdout
	if r := e.run("", "regex", "import", second); !strings.Contains(r.stdout, "present   ov: regex 2 has its allowlist(s) already") ||
		!strings.Contains(r.stdout, "present   old-rule: regex 1 is disabled already") {
		t.Errorf("re-import:\n%s", r.stdout)
	}
	if after := e.mustRun("regex", "list", "--json").stdout; after != before {
		t.Error("importing the same file again changed the stored rules")
	}
	tests := []struct {
		text  string
		leaks bool
	}{
		{"acme_abcd1234", true},
		{"see acme_abcd1234 in the Example docs", false}, // line allowlist
		{"acme_test0001", false},                         // match regex AND stopword
		{"acme_tzzz0001", true},                          // AND: no stopword
		{"acme_00000000", false},                         // global, targeted at acme
		{"other_00000000", true},                         // not targeted
		{"old_abcdefgh", false},                          // disabledRules
		{"ov_allowed", false},                            // override
		{"ov_abcdefgh", true},
	}
	for _, tt := range tests {
		c := e.run("", "check", tt.text)
		if got := c.code == ExitLeak; got != tt.leaks || (c.code != ExitOK && c.code != ExitLeak) {
			t.Errorf("check %q: exit %d, want leak=%v\n%s%s", tt.text, c.code, tt.leaks, c.stdout, c.stderr)
		}
	}
}

// TestGitleaksRulesSharingARegexKeepTheirIDs: imported rules are keyed by
// their gitleaks id, so two that share a regex are both stored; importing
// again changes nothing, and rules added by hand stay unique by pattern.
func TestGitleaksRulesSharingARegexKeepTheirIDs(t *testing.T) {
	e := newEnv(t)
	path := writeFile(t, t.TempDir(), "twins.toml", `
[[rules]]
id = "vendor-a-key"
regex = '''key_[a-z0-9]{24}'''
[[rules]]
id = "vendor-b-key"
regex = '''key_[a-z0-9]{24}'''
`, 0o600)
	r := e.mustRun("regex", "import", path)
	if !strings.Contains(r.stdout, "imported  vendor-a-key → regex 1") || !strings.Contains(r.stdout, "imported  vendor-b-key → regex 2") {
		t.Errorf("import:\n%s", r.stdout)
	}
	if r := e.mustRun("regex", "import", path); !strings.Contains(r.stderr, "0 imported, 2 already present") {
		t.Errorf("re-import: %s", r.stderr)
	}
	e.mustRun("regex", "add", `key_[a-z0-9]{24}`, "-d", "by hand")
	if r := e.run("", "regex", "add", `key_[a-z0-9]{24}`); r.code != ExitError || !strings.Contains(r.stderr, "already exists as regex 3") {
		t.Errorf("a second hand-added copy: %+v", r)
	}
}

// TestRegexAddTrial: --trial stores the rule in monitor with its end, regex
// list says so, bad trials are refused, and an explicit action ends it.
func TestRegexAddTrial(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "regex", "add", `acme_[a-z0-9]{32}`, "--trial", "24h")
	if r.code != ExitOK || !strings.Contains(r.stderr, "in trial") || !strings.Contains(r.stderr, "2026-11-26T12:00:00Z") {
		t.Fatalf("regex add --trial: %+v", r)
	}
	list := e.mustRun("regex", "list")
	if !strings.Contains(list.stdout, "trial") || !strings.Contains(list.stderr, "records only until 2026-11-26T12:00:00Z") {
		t.Errorf("regex list of a trial rule: %+v", list)
	}
	var rs []store.Regex
	if err := json.Unmarshal([]byte(e.mustRun("regex", "list", "--json").stdout), &rs); err != nil || len(rs) != 1 ||
		rs[0].Action != store.ActionMonitor || rs[0].TrialUntil == nil {
		t.Fatalf("stored trial rule: %+v, %v", rs, err)
	}
	for _, bad := range [][]string{{`other_[0-9]{20}`, "--trial", "10s"}, {`other_[0-9]{20}`, "--trial", "2400h"},
		{`other_[0-9]{20}`, "--trial", "24h", "--action", "monitor"}, {`other_[0-9]{20}`, "--trial", "soon"}, {"--builtin", "all", "--trial", "24h"}} {
		r := e.run("", append([]string{"regex", "add"}, bad...)...)
		if r.code != ExitError || !strings.Contains(r.stderr, "--trial") {
			t.Errorf("regex add %v: exit %d, %q", bad, r.code, r.stderr)
		}
	}
	e.mustRun("regex", "update", "1", "--action", "delete")
	var after []store.Regex
	if err := json.Unmarshal([]byte(e.mustRun("regex", "list", "--json").stdout), &after); err != nil || after[0].TrialUntil != nil || after[0].Action != store.ActionDelete {
		t.Errorf("after update --action delete: %+v, %v", after, err)
	}
}

// TestRuleChangesAreAuditedOnce: the CLI's rule changes go through the
// same audited, idempotent functions as Slack's buttons; a change made
// already says so and records nothing.
func TestRuleChangesAreAuditedOnce(t *testing.T) {
	e := newEnv(t)
	e.mustRun("regex", "add", "tok_[a-z0-9]{16}", "--description", "tokens", "--action", "monitor")
	e.mustRun("regex", "update", "1", "--action", "delete")
	r := e.mustRun("regex", "update", "1", "--action", "delete")
	if !strings.Contains(r.stderr, "already") || !strings.Contains(r.stderr, "nothing changed") {
		t.Errorf("a second update said %q", r.stderr)
	}
	log := e.mustRun("audit", "--json").stdout
	var entries []store.AuditEntry
	if err := json.Unmarshal([]byte(log), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Action != "rule.resume" || entries[1].Action != "rule.add" || !strings.HasPrefix(entries[0].Actor, "os:") {
		t.Errorf("audit = %+v; want add, then one resume, by an OS user", entries)
	}
}
