package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/bot/history"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// scanEnv is a CLI environment against a fake Slack whose history holds
// messages posted in the last minutes.
func scanEnv(t *testing.T) (*env, *fakeslack.Server) {
	t.Helper()
	fake := fakeslack.New(fakeslack.Options{LiveClock: true, HistoryPage: 3, PingInterval: -1})
	t.Cleanup(fake.Close)
	e := newEnv(t)
	e.now = time.Now().Add(10 * time.Minute) // after every message the test posts
	e.vars[EnvUserToken] = fake.UserToken()
	e.vars[EnvAPIURL] = fake.APIURL()
	e.vars[EnvConfig] = writeFile(t, t.TempDir(), "c.toml", "[catchup]\nrequests_per_minute = 1000\npage_size = 3\n[notify]\nalert_channel = \"C0ALERTS001\"\n", 0o600)
	e.mustRun("regex", "add", `6759[0-9]{12}`, "-d", "cards")
	return e, fake
}

type sweepJSON struct {
	Messages, Findings, Conversations int
	NewLeaks                          int `json:"new_leaks"`
	Resumed                           bool
	AlreadyDone                       bool `json:"already_done"`
}

func scanJSON(t *testing.T, r result) sweepJSON {
	t.Helper()
	var s sweepJSON
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("scan --json: %v\n%+v", err, r)
	}
	return s
}

// TestScanRecordsHistoryAndDeletesNothing: a sweep reads every conversation
// (pages, threads, a DM), records what the rules find as found in history,
// deletes nothing, queues one summary alert, and is not repeated; --enforce
// shows, then queues, the deletions.
func TestScanRecordsHistoryAndDeletesNothing(t *testing.T) {
	e, fake := scanEnv(t)
	fake.SetConversation(fakeslack.Conversation{ID: "C0DEVOPS001", Name: "devops"})
	fake.SetConversation(fakeslack.Conversation{ID: "D0DMWITHBOB", Type: "im", User: "U0BOB000001"})
	leaks := 0
	for i := range 10 {
		text := fmt.Sprintf("note %d", i)
		if i%3 == 0 {
			text, leaks = fmt.Sprintf("card 6759%012d", 100000000000+i), leaks+1
		}
		ch := []string{"C0GENERAL01", "C0DEVOPS001"}[i%2]
		if _, err := fake.PostQuiet(fakeslack.Message{Channel: ch, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	parent, _ := fake.PostQuiet(fakeslack.Message{Channel: "C0DEVOPS001", Text: "thread"})
	for i := range 4 {
		fake.PostQuiet(fakeslack.Message{Channel: "C0DEVOPS001", ThreadTS: parent, Text: fmt.Sprintf("reply %d", i)})
	}
	fake.PostQuiet(fakeslack.Message{Channel: "C0DEVOPS001", ThreadTS: parent, Text: "reply card 6759649826438453"})
	fake.PostQuiet(fakeslack.Message{Channel: "D0DMWITHBOB", ChannelType: "im", User: "U0BOB000001", Text: "dm card 6759649826438461"})
	leaks += 2

	r := e.run("", "scan", "--since", "1h", "--json")
	if r.code != ExitOK {
		t.Fatalf("scan: %+v", r)
	}
	s := scanJSON(t, r)
	if s.Messages != 17 || s.Findings != leaks || s.NewLeaks != leaks || s.Conversations != 3 {
		t.Errorf("sweep = %+v; want 17 messages, %d findings in 3 conversations", s, leaks)
	}
	fake.Snapshot(func(st *fakeslack.State) {
		if n := len(st.Deletes()); n != 0 {
			t.Errorf("a sweep called chat.delete %d times", n)
		}
	})
	out := e.mustRun("leaks", "list", "--origin", "history", "--json").stdout
	var ls []store.Leak
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != leaks {
		t.Fatalf("history leaks = %d, %v", len(ls), err)
	}
	for _, l := range ls {
		if (l.Status != store.LeakFound && l.Status != store.LeakUndeletable) || l.Origin != store.OriginHistory {
			t.Errorf("a history leak with status %q, origin %q", l.Status, l.Origin)
		}
	}
	if r := e.mustRun("leaks", "list", "--origin", "live"); r.stdout != "" || !strings.Contains(r.stderr, "No leaks") {
		t.Errorf("live leaks after a sweep: %+v", r)
	}
	st, err := store.Open(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	oc, _ := st.OutboxCounts(context.Background())
	st.Close()
	if n := oc[store.KindAlert][store.OutboxPending]; n != 1 {
		t.Errorf("%d alerts queued for one sweep, want 1 summary", n)
	}

	// The same command again: not repeated.
	if s := scanJSON(t, e.run("", "scan", "--since", "1h", "--json")); !s.AlreadyDone || s.NewLeaks != 0 {
		t.Errorf("a finished sweep was run again: %+v", s)
	}
	if s := scanJSON(t, e.run("", "scan", "--since", "1h", "--json", "--again")); s.AlreadyDone || s.NewLeaks != 0 || s.Findings != leaks {
		t.Errorf("--again: %+v", s)
	}

	// --enforce shows, then queues; never the DM.
	r = e.mustRun("scan", "--enforce")
	if !strings.Contains(r.stdout, fmt.Sprintf("Would queue the deletion of %d message", leaks-1)) {
		t.Errorf("scan --enforce: %s", r.stdout)
	}
	r = e.mustRun("scan", "--enforce", "--yes")
	if !strings.Contains(r.stdout, fmt.Sprintf("Queued the deletion of %d message", leaks-1)) {
		t.Errorf("scan --enforce --yes: %s", r.stdout)
	}
	out = e.mustRun("leaks", "list", "--status", "pending").stdout
	if strings.Count(out, "\n") != leaks || strings.Contains(out, "D0DMWITHBOB") {
		t.Errorf("pending deletions after --enforce:\n%s", out)
	}
	if r := e.mustRun("scan", "--enforce", "--yes"); !strings.Contains(r.stdout, "Queued the deletion of 0 message") {
		t.Errorf("a second --enforce: %s", r.stdout)
	}
}

// TestScanContinuesAfterAnInterruption: a sweep that fails halfway (Slack
// answers an error) continues from its cursors when rerun, and records each
// leak once.
func TestScanContinuesAfterAnInterruption(t *testing.T) {
	e, fake := scanEnv(t)
	for i := range 12 {
		text := fmt.Sprintf("note %d", i)
		if i%4 == 0 {
			text = fmt.Sprintf("card 6759%012d", 100000000000+i)
		}
		fake.PostQuiet(fakeslack.Message{Text: text})
	}
	pass := fakeslack.Response{Delay: time.Millisecond}
	fake.Script("conversations.history", pass, pass, fakeslack.Response{Error: "fatal_error"})
	r := e.run("", "scan", "--since", "1h", "--channel", "C0GENERAL01", "--json")
	if r.code != ExitError || !strings.Contains(r.stderr, "rerun the same command to continue") {
		t.Fatalf("interrupted scan: %+v", r)
	}
	r = e.run("", "scan", "--since", "1h", "--channel", "C0GENERAL01", "--json")
	s := scanJSON(t, r)
	if !s.Resumed || s.Messages != 12 || s.Findings != 3 {
		t.Errorf("resumed sweep = %+v; want 12 messages, 3 findings", s)
	}
	fake.Snapshot(func(st *fakeslack.State) {
		// 4 pages of 3, the failed call, and 2 pages read before it: the
		// rest continued from the cursor instead of starting over.
		if n := st.Calls("conversations.history"); n != 5 {
			t.Errorf("%d history calls, want 5 (2 pages, the failure, then the 2 pages left)", n)
		}
	})
	out := e.mustRun("leaks", "list", "--json").stdout
	var ls []store.Leak
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 3 {
		t.Errorf("leaks = %d, %v; want 3", len(ls), err)
	}
}

func TestScanRefusesBadInput(t *testing.T) {
	e, _ := scanEnv(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "yesterday"}, "--since"},
		{[]string{"--since", "1h", "--until", "2h"}, "is not before"},
		{[]string{"--types", "dm"}, "not one of channel"},
		{[]string{"--channel", "#nowhere"}, "no conversation of that name"},
	} {
		r := e.run("", append([]string{"scan"}, tt.args...)...)
		if r.code != ExitError || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("scan %v: exit %d, %q", tt.args, r.code, r.stderr)
		}
	}
	delete(e.vars, EnvUserToken)
	if r := e.run("", "scan"); r.code != ExitError || !strings.Contains(r.stderr, EnvUserToken) {
		t.Errorf("scan without a token: %+v", r)
	}
}

// TestBacktests: regex test --history, regex test --id and regex import
// --backtest read history and report what would be flagged, masked, per
// conversation and per rule, storing and deleting nothing.
func TestBacktests(t *testing.T) {
	e, fake := scanEnv(t)
	fake.SetConversation(fakeslack.Conversation{ID: "C0DEVOPS001", Name: "devops"})
	for i := range 8 {
		text := fmt.Sprintf("note %d", i)
		if i%4 == 0 {
			text = fmt.Sprintf("card 6759%012d and token acme_%032d", 100000000000+i, i)
		}
		fake.PostQuiet(fakeslack.Message{Channel: []string{"C0GENERAL01", "C0DEVOPS001"}[i%2], Text: text})
	}
	r := e.mustRun("regex", "test", `acme_[0-9]{32}`, "--history", "1h")
	for _, want := range []string{"8 messages in 2 conversations, 2 would be flagged (25.00%)", "#general", "#devops", "Examples (masked):"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("regex test --history lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "acme_00000000000000000000000000000000") || !strings.Contains(r.stderr, "Nothing was stored") {
		t.Errorf("a back-test showed a secret in full, or did not say it stored nothing: %+v", r)
	}
	r = e.mustRun("regex", "test", "--id", "1", "--history", "1h", "--channel", "C0GENERAL01", "--json")
	var bt struct {
		Messages, Flagged, Conversations int
	}
	if err := json.Unmarshal([]byte(r.stdout), &bt); err != nil || bt.Messages != 4 || bt.Flagged != 2 || bt.Conversations != 1 {
		t.Errorf("regex test --id 1 --history --channel: %+v %v\n%s", bt, err, r.stdout)
	}
	if r := e.run("", "regex", "test", "x+", "some text", "--history", "1h"); r.code != ExitError || !strings.Contains(r.stderr, "give no TEXT") {
		t.Errorf("--history with TEXT: %+v", r)
	}
	file := writeFile(t, t.TempDir(), "rules.txt", "acme_[0-9]{32}\tacme tokens\nnever_[a-z]{40}\tnothing\nbroken_(x\tunclosed\n", 0o600)
	r = e.mustRun("regex", "import", file, "--backtest", "1h")
	if !strings.Contains(r.stderr, "skipped   line 3") || !strings.Contains(r.stderr, "missing closing )") {
		t.Errorf("import --backtest does not say which rule it left out, and why: %q", r.stderr)
	}
	for _, want := range []string{"RULE", "line 1", "line 2", "2 would be flagged"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("import --backtest lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := e.ruleCount(); n != 1 {
		t.Errorf("import --backtest stored rules: %d, want the 1 of the setup", n)
	}
	if out := e.mustRun("leaks", "list", "--json").stdout; strings.TrimSpace(out) != "[]" {
		t.Errorf("a back-test recorded leaks: %s", out)
	}
	fake.Snapshot(func(st *fakeslack.State) {
		if len(st.Deletes()) != 0 {
			t.Error("a back-test deleted")
		}
	})
}

// TestScanCtrlCThenResumeThenEnforce: a sweep stopped with Ctrl-C (its
// context cancelled) mid-way goes on when rerun, without rescanning what it
// finished or recording a leak twice; scan --enforce then has a real daemon
// delete exactly the recorded messages, and no clean one.
func TestScanCtrlCThenResumeThenEnforce(t *testing.T) {
	e, fake := scanEnv(t)
	var leaks, clean []string
	for i := range 30 {
		if i%5 == 0 {
			ts, _ := fake.PostQuiet(fakeslack.Message{Text: fmt.Sprintf("card 6759%012d", 100000000000+i)})
			leaks = append(leaks, ts)
			continue
		}
		ts, _ := fake.PostQuiet(fakeslack.Message{Text: fmt.Sprintf("note %d", i)})
		clean = append(clean, ts)
	}
	// Slow pages, and a Ctrl-C after the third.
	var slow []fakeslack.Response
	for range 20 {
		slow = append(slow, fakeslack.Response{Delay: 30 * time.Millisecond})
	}
	fake.Script("conversations.history", slow...)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_ = fake.Wait(ctx, func(st *fakeslack.State) bool { return st.Calls("conversations.history") >= 3 })
		cancel()
	}()
	r := e.runCtx(ctx, "", "scan", "--since", "1h", "--json")
	cancel()
	if r.code != ExitInterrupted || !strings.Contains(r.stderr, "run the same command again to continue") {
		t.Fatalf("interrupted scan: %+v", r)
	}
	var before int
	fake.Snapshot(func(st *fakeslack.State) { before = st.Calls("conversations.history") })
	s := scanJSON(t, e.run("", "scan", "--since", "1h", "--json"))
	if !s.Resumed || s.Messages != 30 || s.Findings != len(leaks) {
		t.Errorf("resumed sweep = %+v; want 30 messages, %d findings", s, len(leaks))
	}
	fake.Snapshot(func(st *fakeslack.State) {
		// 10 pages of 3 in all: the rerun read only those not finished.
		if again := st.Calls("conversations.history") - before; again > 10-(before-1) {
			t.Errorf("the rerun made %d history calls after %d; it rescanned finished pages", again, before)
		}
	})
	var ls []store.Leak
	if err := json.Unmarshal([]byte(e.mustRun("leaks", "list", "--json").stdout), &ls); err != nil || len(ls) != len(leaks) {
		t.Fatalf("leaks = %d, %v; want %d, each once", len(ls), err, len(leaks))
	}

	// Enforce, and let a daemon carry it out (on the daemon's clock).
	e.now = time.Now()
	e.mustRun("scan", "--enforce", "--yes")
	st, err := store.Open(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dctx, stop := context.WithCancel(context.Background())
	defer stop()
	d := bot.New(st, zerolog.Nop(), bot.Options{AppToken: fake.AppToken(), UserToken: fake.UserToken(), APIURL: fake.APIURL(),
		RetryMax: 200 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	if err := fake.Wait(wctx, func(s *fakeslack.State) bool {
		for _, ts := range leaks {
			if s.SuccessfulDeletes("C0GENERAL01", ts) != 1 {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("the enforced history findings were not deleted: %v", err)
	}
	fake.Snapshot(func(s *fakeslack.State) {
		for _, ts := range clean {
			if s.DeleteCalls("C0GENERAL01", ts) != 0 {
				t.Errorf("clean message %s reached chat.delete", ts)
			}
		}
		if n := len(s.Deletes()); n != len(leaks) {
			t.Errorf("%d chat.delete calls for %d enforced findings", n, len(leaks))
		}
	})
	stop()
	<-done
}

// TestProgressLine: without a terminal, a line every 10 s, and at once when
// it starts waiting for Slack's rate limit; rate and ETA from the clock.
func TestProgressLine(t *testing.T) {
	var b strings.Builder
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	now := start
	p := newProgressLine(&b, start, func() time.Time { return now })
	now = start.Add(20 * time.Second)
	p.show(history.Progress{Conversations: 4, Done: 1, Messages: 400, Findings: 2})
	now = now.Add(time.Second)
	p.show(history.Progress{Conversations: 4, Done: 1, Messages: 450, Findings: 2}) // within 10 s: nothing
	p.show(history.Progress{Conversations: 4, Done: 1, Messages: 450, Findings: 2, Waiting: true})
	p.done()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b.String())
	}
	if lines[0] != "scan: 1/4 conversations, 400 messages, 2 with findings, 20 msg/s, ETA 1m0s" {
		t.Errorf("line = %q", lines[0])
	}
	if !strings.HasSuffix(lines[1], "(waiting for Slack's rate limit)") {
		t.Errorf("waiting line = %q", lines[1])
	}
}

// TestScanEnforceNeedsNoToken: --enforce reads nothing from Slack, so it
// works without SLACK_USER_TOKEN.
func TestScanEnforceNeedsNoToken(t *testing.T) {
	e := newEnv(t)
	e.mustRun("regex", "add", `6759[0-9]{12}`)
	if r := e.mustRun("scan", "--enforce"); !strings.Contains(r.stdout, "Would queue the deletion of 0 message") {
		t.Errorf("scan --enforce without a token: %+v", r)
	}
}

// TestScanWithoutRules: a database with no enabled rule is refused before
// any sweep is started, with what to do.
func TestScanWithoutRules(t *testing.T) {
	e, _ := scanEnv(t)
	e.mustRun("regex", "disable", "1")
	r := e.run("", "scan", "--since", "1h")
	if r.code != ExitError || !strings.Contains(r.stderr, "no enabled rule") || !strings.Contains(r.stderr, "regex add") {
		t.Fatalf("scan without rules: %+v", r)
	}
	e.mustRun("regex", "enable", "1")
	if s := scanJSON(t, e.run("", "scan", "--since", "1h", "--json")); s.Resumed {
		t.Error("the refused scan left a sweep behind to resume")
	}
}
