package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/securechat/securechat/detect"
)

// TestRegexTestStoresNothing: 'regex test' shows masked matches and the
// share of messages flagged, with the engine's checks, and stores nothing.
func TestRegexTestStoresNothing(t *testing.T) {
	e := newEnv(t)
	r := e.mustRun("regex", "test", `acme_[a-z0-9]{32}`, "token acme_0123456789abcdef0123456789abcdef", "lunch?")
	if !strings.Contains(r.stdout, "line 1: ac****************…ef (bytes 6-43)") || !strings.Contains(r.stderr, "1 of 2 message(s) would be flagged (50.0%)") ||
		strings.Contains(r.stdout, "0123456789abcdef") {
		t.Errorf("regex test: %+v", r)
	}
	r = e.run("4111111111111111\n4111111111111112\n", "regex", "test", `\b[0-9]{16}\b`, "--validator", "luhn", "--json", "-")
	var out struct {
		Messages, Flagged int
		Matches           []struct{ Line int }
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Messages != 2 || out.Flagged != 1 || out.Matches[0].Line != 1 {
		t.Errorf("regex test --json from stdin: %s %v", r.stdout, err)
	}
	if r := e.run("", "regex", "test", `a*`, "x"); r.code != ExitError || !strings.Contains(r.stderr, "empty string") {
		t.Errorf("a pattern add would refuse: %+v", r)
	}
	if r := e.run("", "regex", "list"); !strings.Contains(r.stderr, "No regexes yet") && !strings.Contains(r.stderr, "no database") {
		t.Errorf("regex test stored something: %+v", r)
	}
}

// TestRulesAddedInBulkStartInMonitor: all builtins at once, and an import,
// start in monitor unless --action delete.
func TestRulesAddedInBulkStartInMonitor(t *testing.T) {
	e := newEnv(t)
	r := e.mustRun("regex", "add", "--builtin", "all")
	if n := strings.Count(r.stdout, "(monitor)"); n != len(detect.Builtins()) || !strings.Contains(r.stderr, "delete nothing") {
		t.Errorf("--builtin all: %d added in monitor\n%s%s", n, r.stdout, r.stderr)
	}
	if r := e.mustRun("regex", "add", "--builtin", "all"); strings.Count(r.stdout, "present") != len(detect.Builtins()) {
		t.Errorf("a second --builtin all:\n%s", r.stdout)
	}
	path := writeFile(t, t.TempDir(), "list.txt", "tok_[a-z0-9]{20}\nkey_[a-z0-9]{20}\n", 0o600)
	if r := e.mustRun("regex", "import", path); strings.Count(r.stdout, "(monitor)") != 2 {
		t.Errorf("import: %s", r.stdout)
	}
	path2 := writeFile(t, t.TempDir(), "list2.txt", "sec_[a-z0-9]{20}\n", 0o600)
	if r := e.mustRun("regex", "import", "--action", "delete", path2); !strings.Contains(r.stdout, "(delete)") {
		t.Errorf("import --action delete: %s", r.stdout)
	}
	if r := e.mustRun("regex", "import", "--dry-run", path2); !strings.Contains(r.stdout, "would import") {
		t.Errorf("dry run: %s", r.stdout)
	}
	if r := e.mustRun("regex", "add", `single_[a-z]{12}`, "--json"); !strings.Contains(r.stdout, `"action": "delete"`) {
		t.Errorf("a single rule keeps delete as its default: %s", r.stdout)
	}
}
