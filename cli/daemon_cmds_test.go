package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/securechat/securechat/bot"
)

func TestManifest(t *testing.T) {
	e := newEnv(t)
	r := e.mustRun("manifest", "--json")
	var m struct {
		OAuth struct {
			Scopes struct{ User []string } `json:"scopes"`
		} `json:"oauth_config"`
		Settings struct {
			Events struct {
				UserEvents []string `json:"user_events"`
			} `json:"event_subscriptions"`
			SocketMode bool `json:"socket_mode_enabled"`
		} `json:"settings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatal(err)
	}
	if !m.Settings.SocketMode || strings.Join(m.OAuth.Scopes.User, ",") != strings.Join(bot.ManifestUserScopes(), ",") ||
		len(m.Settings.Events.UserEvents) != 4 {
		t.Errorf("manifest = %+v", m)
	}
	for _, name := range []string{"", "   ", strings.Repeat("n", 36)} {
		if r := e.run("", "manifest", "--name", name); r.code != ExitError || !strings.Contains(r.stderr, "1 to 35 characters") {
			t.Errorf("manifest --name %q: %+v", name, r)
		}
	}
	if r := e.run("", "manifest", "--name", strings.Repeat("n", 35)); r.code != 0 {
		t.Errorf("manifest --name of 35 characters: %+v", r)
	}
	y := e.mustRun("manifest").stdout
	// The YAML says exactly what the JSON says: the bot user, its scopes
	// and event, interactivity and /securechat included.
	var fromYAML, fromJSON any
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
		t.Fatalf("YAML manifest: %v", err)
	}
	if err := json.Unmarshal([]byte(r.stdout), &fromJSON); err != nil {
		t.Fatal(err)
	}
	yj, _ := json.Marshal(fromYAML)
	jj, _ := json.Marshal(fromJSON)
	if string(yj) != string(jj) {
		t.Errorf("the YAML and JSON manifests differ:\n%s\n%s", yj, jj)
	}
	for _, want := range []string{`"bot":["chat:write","im:write","commands"]`, `"bot_events":["app_home_opened"]`, `"interactivity":{"is_enabled":true}`, `"command":"/securechat"`} {
		if !strings.Contains(string(jj), want) {
			t.Errorf("manifest lacks %s", want)
		}
	}
	for _, want := range append(append([]string{"socket_mode_enabled: true"}, bot.ManifestUserScopes()...), userEvents...) {
		if !strings.Contains(y, want) {
			t.Errorf("YAML manifest lacks %q", want)
		}
	}
}

func TestRunRefusesMissingTokens(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "run")
	if r.code != ExitError || !strings.Contains(r.stderr, "SLACK_APP_TOKEN is not set") {
		t.Errorf("run without tokens: %+v", r)
	}
	e.vars[EnvAppToken] = "xapp-1-A1-1-abcdefabcdef"
	e.vars[EnvUserToken] = "xoxb-1-2-abcdefabcdef"
	r = e.run("", "run")
	if r.code != ExitError || !strings.Contains(r.stderr, "it is a bot token") {
		t.Errorf("run with a bot token: %+v", r)
	}
	e.vars[EnvUserToken] = "xoxp-1-2-3-abcdefabcdef"
	r = e.run("", "run", "--workers", "0")
	if r.code != ExitError || !strings.Contains(r.stderr, "workers") {
		t.Errorf("run --workers 0: %+v", r)
	}
}

func TestDemoThroughTheCommandTree(t *testing.T) {
	e := newEnv(t)
	r := e.mustRun("demo")
	if !strings.Contains(r.stdout, "3 of 6 messages leaked and were deleted; 1 DM was recorded") ||
		!strings.Contains(r.stdout, "RECORDED, not deleted (Slack does not let admins delete DMs") {
		t.Errorf("demo output:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	// With --db the demo leaves its database for a look afterwards.
	r = e.mustRun("leaks", "list", "--json")
	if strings.Count(r.stdout, `"status": "deleted"`) != 3 {
		t.Errorf("leaks after demo --db:\n%s", r.stdout)
	}
	// A second demo on the same --db resets it, and does not hang.
	e.mustRun("demo")
	if r = e.mustRun("leaks", "list", "--json"); strings.Count(r.stdout, `"id"`) != 5 {
		t.Errorf("leaks after a second demo --db (want the 5 of one run):\n%s", r.stdout)
	}
}

// TestDemoNeverWritesTheRealDatabase: SECURECHAT_DB or a config file name
// the production database; the demo uses a temporary one then, and refuses
// a --db that holds data it did not create.
// TestDemoRefusesPostgres: 'demo --db postgres://…' is refused before
// anything connects (nothing listens at that address: a connection would
// fail with another message), so no demo rule can reach a database that
// replicas enforce.
func TestDemoRefusesPostgres(t *testing.T) {
	e := newEnv(t)
	e.db = "postgres://admin:hunter2@127.0.0.1:1/securechat"
	r := e.run("", "demo")
	if r.code != ExitError || !strings.Contains(r.stderr, "never on a PostgreSQL database") || strings.Contains(r.stderr, "hunter2") {
		t.Errorf("demo --db postgres://…: %+v", r)
	}
}

func TestDemoNeverWritesTheRealDatabase(t *testing.T) {
	e := newEnv(t)
	e.mustRun("regex", "add", `secret-[0-9]{6}`, "-d", "ours")
	before := e.mustRun("regex", "list", "--json").stdout

	var out, errb bytes.Buffer
	vars := map[string]string{EnvDB: e.db}
	code := Run(context.Background(), []string{"demo"}, Deps{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return vars[k] }, Now: time.Now})
	if code != ExitOK || strings.Contains(out.String(), e.db) {
		t.Fatalf("demo with SECURECHAT_DB: exit %d, output names the real database:\n%s%s", code, out.String(), errb.String())
	}
	if after := e.mustRun("regex", "list", "--json").stdout; after != before {
		t.Errorf("the demo changed the real database's rules:\n%s", after)
	}
	r := e.run("", "demo") // e.run passes --db e.db on the command line
	if r.code != ExitError || !strings.Contains(r.stderr, "was not created by the demo") {
		t.Errorf("demo --db on a real database: %+v", r)
	}
	if after := e.mustRun("regex", "list", "--json").stdout; after != before {
		t.Errorf("a refused demo changed the database:\n%s", after)
	}
	// An empty database is no demo's either (a daemon may be about to use
	// it), and one of an earlier release is refused without being migrated.
	e.mustRun("regex", "rm", "1")
	if r := e.run("", "demo"); r.code != ExitError || !strings.Contains(r.stderr, "was not created by the demo") {
		t.Errorf("demo --db on an empty real database: %+v", r)
	}
	old, err := os.ReadFile("../store/testdata/v3.db")
	if err != nil {
		t.Fatal(err)
	}
	e.db = filepath.Join(t.TempDir(), "v3.db")
	if err := os.WriteFile(e.db, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.run("", "demo"); r.code != ExitError || !strings.Contains(r.stderr, "earlier release") {
		t.Errorf("demo --db on a schema-3 database: %+v", r)
	}
	if now, _ := os.ReadFile(e.db); !bytes.Equal(now, old) {
		t.Error("a refused demo changed the database")
	}
}
