package cli

import (
	"encoding/json"
	"strings"
	"testing"

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
	y := e.mustRun("manifest").stdout
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
	if !strings.Contains(r.stdout, "4 of 6 messages leaked and were deleted") {
		t.Errorf("demo output:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	// With --db the demo leaves its database for a look afterwards.
	r = e.mustRun("leaks", "list", "--json")
	if strings.Count(r.stdout, `"status": "deleted"`) != 4 {
		t.Errorf("leaks after demo --db:\n%s", r.stdout)
	}
}
