package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// TestCatchupAfterSIGKILL runs the real binary: it is SIGKILLed, members go
// on posting (in two conversations, in threads, over several history pages,
// leaks among clean messages), and after the restart every leak posted
// meanwhile is recorded and deleted once and no clean message is touched.
func TestCatchupAfterSIGKILL(t *testing.T) {
	fake := fakeslack.New(fakeslack.Options{PingInterval: 500 * time.Millisecond, LiveClock: true, HistoryPage: 16})
	defer fake.Close()
	fake.SetConversation(fakeslack.Conversation{ID: "C0DEVOPS001", Name: "devops"})
	db, env := daemonEnv(t, fake, "[catchup]\nrequests_per_minute = 1000\n", `6759[0-9]{12}`)
	first := start(t, env, "run")
	waitFor(t, fake, "connection", func(s *fakeslack.State) bool { return s.Connections() == 1 }, first.stderr.String)
	parent, envID, err := fake.Post(fakeslack.Message{Text: "release thread"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, "the live message acknowledged", func(s *fakeslack.State) bool { return s.Acked(envID) }, first.stderr.String)
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitFor(t, fake, "progress saved", func(*fakeslack.State) bool {
		wm, _ := st.Watermarks(context.Background())
		return wm["C0GENERAL01"] == parent
	}, first.stderr.String)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t, 5*time.Second)

	type msg struct{ ch, ts string }
	var leaks, clean []msg
	post := func(m fakeslack.Message, leak bool) string {
		ts, err := fake.PostQuiet(m)
		if err != nil {
			t.Fatal(err)
		}
		if m.Channel == "" {
			m.Channel = "C0GENERAL01"
		}
		if leak {
			leaks = append(leaks, msg{m.Channel, ts})
		} else {
			clean = append(clean, msg{m.Channel, ts})
		}
		return ts
	}
	for i := range 40 {
		ch := []string{"C0GENERAL01", "C0DEVOPS001"}[i%2]
		if i%5 == 0 {
			post(fakeslack.Message{Channel: ch, Text: fmt.Sprintf("oops card 6759%012d", 100000000000+i)}, true)
			continue
		}
		post(fakeslack.Message{Channel: ch, Text: fmt.Sprintf("message %d", i)}, false)
	}
	thread := post(fakeslack.Message{Channel: "C0DEVOPS001", Text: "new thread"}, false)
	for i := range 20 {
		post(fakeslack.Message{Channel: "C0DEVOPS001", ThreadTS: thread, Text: fmt.Sprintf("reply %d", i)}, false)
	}
	post(fakeslack.Message{Channel: "C0DEVOPS001", ThreadTS: thread, Text: "reply card 6759649826438453"}, true)

	second := start(t, env, "run")
	logs := func() string { return first.stderr.String() + "\n--- second\n" + second.stderr.String() }
	for _, l := range leaks {
		waitFor(t, fake, "deleted "+l.ch+"/"+l.ts, func(s *fakeslack.State) bool { return s.SuccessfulDeletes(l.ch, l.ts) == 1 }, logs)
	}
	time.Sleep(500 * time.Millisecond) // a second deletion of any of them would have been sent by now
	fake.Snapshot(func(s *fakeslack.State) {
		for _, l := range leaks {
			if n := s.DeleteCalls(l.ch, l.ts); n != 1 {
				t.Errorf("%s/%s: %d chat.delete calls, want 1", l.ch, l.ts, n)
			}
		}
		for _, c := range clean {
			if !s.Exists(c.ch, c.ts) {
				t.Errorf("clean message %s/%s was deleted", c.ch, c.ts)
			}
		}
	})
	ls, err := st.Leaks(context.Background(), store.LeakFilter{})
	if err != nil || len(ls) != len(leaks) {
		t.Errorf("%d leaks recorded, want %d (%v)", len(ls), len(leaks), err)
	}
	out, code := runCLI(t, env, "leaks", "list", "--channel", "#devops")
	if code != 0 || !strings.Contains(out, "#devops") {
		t.Errorf("leaks list --channel #devops: %d\n%s", code, out)
	}
}

// TestCatchupKilledAtAPageBoundary: the real binary is SIGKILLed while its
// catch-up waits for the second history page, after a live message moved
// the watermark past the whole outage; the next start reads the rest of
// the window and deletes the leak posted early in the outage, once.
func TestCatchupKilledAtAPageBoundary(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (seconds of real waiting): not in -short")
	}
	fake := fakeslack.New(fakeslack.Options{PingInterval: 500 * time.Millisecond, LiveClock: true, HistoryPage: 3})
	defer fake.Close()
	db, env := daemonEnv(t, fake, "[catchup]\nrequests_per_minute = 1000\npage_size = 3\n", `6759[0-9]{12}`)
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs []func() string
	all := func() string {
		out := ""
		for _, l := range logs {
			out += l() + "\n---\n"
		}
		return out
	}
	liveThenKill := func(p *proc, text string) {
		t.Helper()
		ts, envID, err := fake.Post(fakeslack.Message{Text: text})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, fake, "the live message acknowledged", func(s *fakeslack.State) bool { return s.Acked(envID) }, all)
		waitFor(t, fake, "its watermark saved", func(*fakeslack.State) bool {
			wm, _ := st.Watermarks(context.Background())
			return wm["C0GENERAL01"] == ts
		}, all)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.wait(t, 5*time.Second)
	}
	first := start(t, env, "run")
	logs = append(logs, first.stderr.String)
	waitFor(t, fake, "connection", func(s *fakeslack.State) bool { return s.Connections() == 1 }, all)
	liveThenKill(first, "before the outage")

	leak, err := fake.PostQuiet(fakeslack.Message{Text: "early in the outage: card 6759649826438453"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		fake.PostQuiet(fakeslack.Message{Text: fmt.Sprintf("standup note %d", i)})
	}
	fake.Script("conversations.history", fakeslack.Response{}, fakeslack.Response{Delay: 20 * time.Second})
	second := start(t, env, "run")
	logs = append(logs, second.stderr.String)
	waitFor(t, fake, "the catch-up waits for its second page", func(s *fakeslack.State) bool { return s.Calls("conversations.history") >= 2 }, all)
	liveThenKill(second, "live while catching up")

	fake.ClearScript("conversations.history")
	third := start(t, env, "run")
	logs = append(logs, third.stderr.String)
	waitFor(t, fake, "the early leak deleted", func(s *fakeslack.State) bool { return s.SuccessfulDeletes("C0GENERAL01", leak) == 1 }, all)
	waitFor(t, fake, "the window closed", func(*fakeslack.State) bool {
		ws, err := st.CatchupWindows(context.Background())
		return err == nil && len(ws) == 0
	}, all)
	fake.Snapshot(func(s *fakeslack.State) {
		if n := s.DeleteCalls("C0GENERAL01", leak); n != 1 {
			t.Errorf("%d chat.delete calls for the leak, want 1", n)
		}
	})
	third.cmd.Process.Signal(syscall.SIGTERM)
	third.wait(t, 10*time.Second)
}

// daemonEnv writes a config file (a 1 s retry_max, JSON logs, then extra)
// in a new directory and adds the rule pattern to a new database there; it
// returns the database's path and the environment that runs the binary
// against fake.
func daemonEnv(t *testing.T, fake *fakeslack.Server, extra, pattern string) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "securechat.db")
	cfg := filepath.Join(dir, "securechat.toml")
	if err := os.WriteFile(cfg, []byte("[daemon]\nretry_max = \"1s\"\n[log]\nformat = \"json\"\n"+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SECURECHAT_DB=" + db, "SECURECHAT_CONFIG=" + cfg, "SLACK_APP_TOKEN=" + fake.AppToken(),
		"SLACK_USER_TOKEN=" + fake.UserToken(), "SLACK_API_URL=" + fake.APIURL()}
	if out, code := runCLI(t, env, "regex", "add", pattern, "-d", "cards"); code != 0 {
		t.Fatalf("regex add: %d %s", code, out)
	}
	return db, env
}
