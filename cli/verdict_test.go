package cli

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/internal/syncbuf"
	"github.com/securechat/securechat/store"
)

// TestCheckAndDaemonAgree posts texts through the fake Slack to the real
// daemon and gives the same texts to 'securechat check' on the same
// database: for every text, check exits 1 exactly when the daemon records a
// leak, and reports the same rules. An allowlisted value passes both.
func TestCheckAndDaemonAgree(t *testing.T) {
	const key = "verdict-test-allowlist-key-0123"
	const testCard = "6759649826438453"
	e := newEnv(t)
	e.vars[EnvAllowKey] = key
	e.mustRun("regex", "add", maestro, "-d", "Maestro cards")
	e.mustRun("regex", "add", `(?:AKIA|ASIA)[A-Z2-7]{16}`, "-d", "AWS key", "--action", "monitor")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := fakeslack.New(fakeslack.Options{})
	defer fake.Close()
	st, err := store.Open(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs := &syncbuf.Buffer{}
	d := bot.New(st, zerolog.New(logs), bot.Options{AppToken: fake.AppToken(), UserToken: fake.UserToken(), APIURL: fake.APIURL(),
		ReloadInterval: 100 * time.Millisecond, AllowlistKey: []byte(key)})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	wait := func(what string, cond func(*fakeslack.State) bool) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		if err := fake.Wait(wctx, cond); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	wait("connection", func(s *fakeslack.State) bool { return s.Connections() > 0 })

	// The daemon records the card; the admin allowlists that value.
	ts, _, err := fake.Post(fakeslack.Message{Channel: "C0GENERAL01", User: "U0ALICE", Text: "docs test card " + testCard})
	if err != nil {
		t.Fatal(err)
	}
	wait("the first card deleted", func(s *fakeslack.State) bool { return s.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	ls, err := st.Leaks(ctx, store.LeakFilter{})
	if err != nil || len(ls) != 1 {
		t.Fatalf("leaks = %+v, %v", ls, err)
	}
	e.mustRun("leaks", "allow", strconv.FormatInt(ls[0].ID, 10))
	wait("the allowlist reloaded", func(*fakeslack.State) bool { return strings.Contains(logs.String(), `"allowlisted_values":1`) })

	for _, tt := range []struct {
		name, text string
		leaks      bool
	}{
		{"allowlisted value, written with dashes", "again " + testCard[:8] + "-" + testCard[8:], false},
		{"another card", "pay with 6761000410900000", true},
		{"monitor rule", "key AKIAIOSFODNN7EXAMPL2 oops", true},
		{"clean", "lunch at noon?", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts, env, err := fake.Post(fakeslack.Message{Channel: "C0DEVOPS001", User: "U0BOB", Text: tt.text})
			if err != nil {
				t.Fatal(err)
			}
			wait("ack", func(s *fakeslack.State) bool { return s.Acked(env) })
			recorded, err := st.Leaks(ctx, store.LeakFilter{Channel: "C0DEVOPS001"})
			if err != nil {
				t.Fatal(err)
			}
			var daemonRules []int64
			for _, l := range recorded {
				if l.TS == ts {
					daemonRules = append(daemonRules, l.RegexID)
				}
			}
			r := e.run("", "check", "--json", tt.text)
			checkLeaks := r.code == ExitLeak
			if r.code != ExitOK && r.code != ExitLeak {
				t.Fatalf("check: exit %d: %s", r.code, r.stderr)
			}
			if daemonLeaks := len(daemonRules) > 0; checkLeaks != daemonLeaks || daemonLeaks != tt.leaks {
				t.Fatalf("daemon recorded %v, check exit %d (%s); want leak=%v from both", daemonRules, r.code, r.stdout, tt.leaks)
			}
			for _, id := range daemonRules {
				if !strings.Contains(r.stdout, `"regex_id":`+strconv.FormatInt(id, 10)) {
					t.Errorf("check did not report regex %d the daemon recorded: %s", id, r.stdout)
				}
			}
		})
	}
}
