package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/securechat/securechat/detect"
)

func TestImportGitleaks(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "regex", "import", "testdata/gitleaks.toml")
	if r.code != ExitError {
		t.Errorf("exit %d, want 2 (rules were skipped)", r.code)
	}
	for _, want := range []string{
		"imported  1password-secret-key → regex 1",
		"imported  aws-access-token → regex 5",
		"skipped   pkcs12-file: a path-only rule",
		"skipped   lookahead-rule: invalid or unsupported Perl syntax",
		"skipped   matches-everything: it can match the empty string",
		"warning   generic-password: allowlist paths and commits are left out",
		"note      a global allowlist's paths and commits are left out",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("import output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "6 imported, 0 already present, 3 skipped.") {
		t.Errorf("summary: %s", r.stderr)
	}
	list := e.mustRun("regex", "list", "--json").stdout
	var rules []struct {
		ID          int64
		Source      string
		SecretGroup int      `json:"secret_group"`
		Entropy     float64  `json:"entropy"`
		Keywords    []string `json:"keywords"`
		Allowlists  []struct {
			Target    string   `json:"target"`
			Regexes   []string `json:"regexes"`
			Stopwords []string `json:"stopwords"`
		} `json:"allowlists"`
	}
	if err := json.Unmarshal([]byte(list), &rules); err != nil {
		t.Fatal(err)
	}
	if len(rules) != 6 {
		t.Fatalf("%d rules stored, want 6", len(rules))
	}
	// Each allowlist is kept as gitleaks has it: its own (.+EXAMPLE$), then
	// the global one (its regexes and stopwords; its paths left out).
	aws := rules[4]
	if aws.Source != "gitleaks:aws-access-token" || aws.SecretGroup != detect.FirstGroup || aws.Entropy != 3 || len(aws.Keywords) != 5 ||
		len(aws.Allowlists) != 2 || aws.Allowlists[0].Regexes[0] != ".+EXAMPLE$" ||
		!strings.Contains(strings.Join(aws.Allowlists[1].Regexes, " "), "true|false|null") || len(aws.Allowlists[1].Stopwords) != 1 {
		t.Errorf("aws-access-token stored as %+v", aws)
	}
	if pw := rules[5]; pw.SecretGroup != 1 || len(pw.Allowlists) != 2 || pw.Allowlists[0].Target != "line" ||
		!strings.Contains(strings.Join(pw.Allowlists[0].Stopwords, " "), "changeme") {
		t.Errorf("generic-password stored as %+v", pw)
	}

	// Importing again changes nothing.
	r = e.run("", "regex", "import", "testdata/gitleaks.toml")
	if !strings.Contains(r.stderr, "0 imported, 6 already present, 3 skipped.") {
		t.Errorf("re-import: %s", r.stderr)
	}
	if again := e.mustRun("regex", "list", "--json").stdout; again != list {
		t.Error("re-import changed the stored rules")
	}

	// The imported checks work: the allowlisted example key is not a leak,
	// a real-looking one is; the keyword-less password value is dropped by
	// its stopword.
	r = e.run("AKIAIOSFODNN7EXAMPLE\nkey AKIAZ3MSJV4WWNWDE6GK\npassword = changeme-now\npassword = Tr0ub4dor&3x\n", "check")
	if r.code != ExitLeak || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, "line 2:") || !strings.Contains(r.stdout, "line 4:") {
		t.Errorf("check with imported rules: %+v", r)
	}
}

func TestImportPlainList(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "patterns.txt")
	os.WriteFile(path, []byte("# team rules\nAKIA[A-Z2-7]{16}\tAWS key\n\nxox[bp]-[0-9A-Za-z-]{20,}\nbad(\n"), 0o600)
	r := e.run("", "regex", "import", path)
	if r.code != ExitError || !strings.Contains(r.stdout, "imported  line 2 → regex 1") || !strings.Contains(r.stdout, "skipped   line 5: missing closing )") {
		t.Errorf("plain import: %+v", r)
	}
	list := e.mustRun("regex", "list", "--json").stdout
	if !strings.Contains(list, `"description": "AWS key"`) || !strings.Contains(list, `"source": "file:patterns.txt"`) {
		t.Errorf("stored: %s", list)
	}
	r = e.run("xoxb-12345678901234567890\n", "regex", "import", "--dry-run", "-")
	if r.code != ExitOK || !strings.Contains(r.stdout, "would import line 1 (monitor)") {
		t.Errorf("dry run from stdin: %+v", r)
	}
	if after := e.mustRun("regex", "list", "--json").stdout; after != list {
		t.Error("--dry-run stored something")
	}
}

func TestBuiltins(t *testing.T) {
	e := newEnv(t)
	r := e.mustRun("regex", "builtins")
	if !strings.Contains(r.stdout, "payment-card") || !strings.Contains(r.stdout, "luhn") {
		t.Errorf("builtins: %s", r.stdout)
	}
	e.mustRun("regex", "add", "--builtin", "payment-card")
	e.mustRun("regex", "add", "--builtin", "iban", "-d", "Bank accounts")
	r = e.run("4111 1111 1111 1111\n4111 1111 1111 1112\nGB82 WEST 1234 5698 7654 32\nGB82 WEST 1234 5698 7654 33\n", "check", "--json")
	if r.code != ExitLeak || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `"line":1`) || !strings.Contains(r.stdout, `"line":3,"regex_id":2,"description":"Bank accounts"`) {
		t.Errorf("check with builtins: %+v", r)
	}
	for _, bad := range [][]string{{"regex", "add", "--builtin", "nope"}, {"regex", "add", "x+", "--builtin", "iban"}, {"regex", "add"}, {"regex", "add", "x+", "--validator", "crc"}} {
		if r := e.run("", bad...); r.code != ExitError {
			t.Errorf("%v: exit %d", bad, r.code)
		}
	}
	// The README's example still works as it says.
	e.mustRun("regex", "add", maestro, "-d", "Maestro")
	if r := e.run("", "check", "6759649826438453", "676100041090"); r.code != ExitLeak || strings.Count(r.stdout, "Maestro") != 2 {
		t.Errorf("Maestro example: %+v", r)
	}
}

// TestReimportRedefinesAndSaysWhatDidNotChange: a gitleaks config that
// gives an imported id another regex updates the stored rule (its id and
// action kept), also when [extend] disabledRules then disables it; and
// --action delete on rules stored already says that their action stays,
// with the command that changes it.
func TestReimportRedefinesAndSaysWhatDidNotChange(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	v1 := filepath.Join(dir, "v1.toml")
	os.WriteFile(v1, []byte("[[rules]]\nid = \"acme-token\"\nregex = '''acme_[a-z0-9]{16}'''\n"), 0o600)
	e.mustRun("regex", "import", v1)
	r := e.run("", "regex", "import", "--action", "delete", v1)
	if r.code != 0 || !strings.Contains(r.stdout, "its action stays monitor: to change it, run 'securechat regex update 1 --action delete'") {
		t.Errorf("re-import with --action delete: %+v", r)
	}
	v2 := filepath.Join(dir, "v2.toml")
	os.WriteFile(v2, []byte("[extend]\ndisabledRules = [\"acme-token\"]\n[[rules]]\nid = \"acme-token\"\nregex = '''acme_[A-Za-z0-9]{20}'''\n"), 0o600)
	r = e.run("", "regex", "import", v2)
	if r.code != 0 || !strings.Contains(r.stdout, "updated   acme-token → regex 1: its regex changed") || !strings.Contains(r.stderr, "1 updated") {
		t.Fatalf("import of a redefined id: %+v", r)
	}
	var rules []struct {
		ID      int64
		Pattern string
		Enabled bool
		Action  string
	}
	if err := json.Unmarshal([]byte(e.mustRun("regex", "list", "--json").stdout), &rules); err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || rules[0].ID != 1 || rules[0].Pattern != `acme_[A-Za-z0-9]{20}` || rules[0].Enabled || rules[0].Action != "monitor" {
		t.Errorf("stored after the redefinition: %+v", rules)
	}
	r = e.run("", "regex", "add", "--builtin", "all", "--action", "delete")
	r = e.run("", "regex", "add", "--builtin", "all", "--action", "monitor")
	if !strings.Contains(r.stdout, "its action stays delete: to change it, run 'securechat regex update") {
		t.Errorf("--builtin all again with another action: %+v", r)
	}
}
