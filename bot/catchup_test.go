package bot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/bot/history"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// catchupOpts turns the catch-up on, fast enough for tests.
func catchupOpts(o bot.Options) bot.Options {
	o.Catchup = bot.Catchup{Enabled: true, Gap: 300 * time.Millisecond, Lookback: time.Hour,
		Pace: history.Pace{PerMinute: 6000, PageSize: 3}}
	return o
}

// newCatchupHarness starts a daemon with the catch-up on against a fake
// whose message timestamps are now (the look-back is measured from the
// clock) and whose history pages hold at most 3 messages.
func newCatchupHarness(t *testing.T, fake fakeslack.Options, o bot.Options) *harness {
	fake.LiveClock = true
	if fake.HistoryPage == 0 {
		fake.HistoryPage = 3
	}
	h := newHarness(t, setup{fake: fake, opts: catchupOpts(o)})
	h.waitLog("the daemon sees its connection", "connected to Slack over Socket Mode", 1)
	return h
}

// waitWatermark waits until the conversation's saved watermark is ts.
func (h *harness) waitWatermark(channel, ts string) {
	h.t.Helper()
	h.wait("the watermark of "+channel+" saved at "+ts, func(*fakeslack.State) bool {
		wm, _ := h.store.Watermarks(context.Background())
		return wm[channel] == ts
	})
}

func (h *harness) waitLog(what, text string, n int) {
	h.t.Helper()
	h.wait(what, func(*fakeslack.State) bool { return strings.Count(h.logs.String(), text) >= n })
}

// quiet posts while no daemon listens.
func (h *harness) quiet(m fakeslack.Message) string {
	h.t.Helper()
	ts, err := h.slack.PostQuiet(m)
	if err != nil {
		h.t.Fatal(err)
	}
	return ts
}

// TestCatchupAfterRestart: messages posted while the daemon was stopped, in
// several conversations (a private channel and a DM among them), over
// several history pages, as edits, and as replies in
// new threads, are handled after the restart, each once; clean ones are
// left alone.
func TestCatchupAfterRestart(t *testing.T) {
	h := newCatchupHarness(t, fakeslack.Options{}, bot.Options{})
	h.slack.SetUser("U0MEMBER001", "alice")
	h.slack.SetConversation(fakeslack.Conversation{ID: "G0PRIVATE01", Name: "ops-private", Type: "group"})
	h.slack.SetConversation(fakeslack.Conversation{ID: "D0DMWITHADM", Type: "im", User: "U0MEMBER001"})
	h.slack.SetConversation(fakeslack.Conversation{ID: "C0QUIET0001", Name: "quiet", Type: "channel"})
	parent, _ := h.post(fakeslack.Message{Text: "deploy thread"})
	h.waitLog("the live message handled", `"outcome":"clean"`, 0)
	h.waitWatermark("C0GENERAL01", parent)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}

	var leaks, clean []struct{ ch, ts string }
	add := func(list *[]struct{ ch, ts string }, ch, ts string) {
		*list = append(*list, struct{ ch, ts string }{ch, ts})
	}
	for i := range 7 { // three pages in #general
		ts := h.quiet(fakeslack.Message{Text: fmt.Sprintf("standup note %d", i)})
		add(&clean, "C0GENERAL01", ts)
	}
	add(&leaks, "C0GENERAL01", h.quiet(fakeslack.Message{Text: "card " + card}))
	// A reply to a thread older than the window is not read (Slack's
	// history lists threads by their parent): the README says so.
	h.quiet(fakeslack.Message{Text: "in the old thread: 6759649826438461", ThreadTS: parent})
	newParent := h.quiet(fakeslack.Message{Text: "new thread"})
	add(&clean, "C0GENERAL01", newParent)
	for i := range 4 {
		add(&clean, "C0GENERAL01", h.quiet(fakeslack.Message{Text: fmt.Sprintf("reply %d", i), ThreadTS: newParent}))
	}
	add(&leaks, "C0GENERAL01", h.quiet(fakeslack.Message{Text: "reply with 6759649826438479", ThreadTS: newParent}))
	add(&leaks, "G0PRIVATE01", h.quiet(fakeslack.Message{Channel: "G0PRIVATE01", ChannelType: "group", Text: "private 6759649826438487"}))
	add(&leaks, "C0QUIET0001", h.quiet(fakeslack.Message{Channel: "C0QUIET0001", Text: "quiet 6759649826438495"}))
	edited := h.quiet(fakeslack.Message{Text: "posted clean"})
	_, _ = h.slack.Edit("C0GENERAL01", edited, "edited to 6759649826438503") // no connection: the event is lost
	add(&leaks, "C0GENERAL01", edited)
	// The admin's own DM with a member: deletable, since the admin wrote it.
	add(&leaks, "D0DMWITHADM", h.quiet(fakeslack.Message{Channel: "D0DMWITHADM", ChannelType: "im", User: fakeslack.AdminUserID, Text: "dm 6759649826438511"}))
	add(&clean, "C0GENERAL01", h.quiet(fakeslack.Message{Text: "bot says 6759649826438529", Subtype: "bot_message", BotID: "B0OTHER0001"}))

	h.restart(catchupOpts(bot.Options{}))
	for _, l := range leaks {
		h.wait("caught-up leak deleted "+l.ch+"/"+l.ts, func(st *fakeslack.State) bool { return st.SuccessfulDeletes(l.ch, l.ts) == 1 })
	}
	h.waitLog("catch-up done", "catch-up done", 1)
	h.slack.Snapshot(func(st *fakeslack.State) {
		for _, l := range leaks {
			if n := st.DeleteCalls(l.ch, l.ts); n != 1 {
				t.Errorf("%s/%s: %d chat.delete calls, want 1", l.ch, l.ts, n)
			}
		}
		for _, c := range clean {
			if !st.Exists(c.ch, c.ts) || st.DeleteCalls(c.ch, c.ts) != 0 {
				t.Errorf("clean message %s/%s was touched", c.ch, c.ts)
			}
		}
		if st.Calls("conversations.history") < 4 || st.Calls("conversations.replies") < 2 {
			t.Errorf("history calls %d, replies calls %d: the pages and threads were not all read",
				st.Calls("conversations.history"), st.Calls("conversations.replies"))
		}
	})
	if n := len(h.leaks(store.LeakFilter{})); n != len(leaks) {
		t.Errorf("%d leaks recorded, want %d", n, len(leaks))
	}
	names, err := h.store.Names(context.Background(), store.NameConversation)
	if err != nil || names["G0PRIVATE01"] != "ops-private" || names["C0GENERAL01"] != "general" {
		t.Errorf("conversation names cached: %v, %v", names, err)
	}
	// The authors of the leaks are looked up with users.info.
	h.wait("author names cached", func(*fakeslack.State) bool {
		users, _ := h.store.Names(context.Background(), store.NameUser)
		return users["U0MEMBER001"] == "alice" && users[fakeslack.AdminUserID] != ""
	})
}

// TestCatchupAfterCleanShutdownReadsNothingHandled: a restart after a clean
// stop asks history only for what is newer than each watermark (after an
// unclean one it would read the last 2 minutes again).
func TestCatchupAfterCleanShutdownReadsNothingHandled(t *testing.T) {
	h := newCatchupHarness(t, fakeslack.Options{}, bot.Options{})
	for i := range 5 {
		h.post(fakeslack.Message{Text: fmt.Sprintf("hello %d", i)})
	}
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	h.restart(catchupOpts(bot.Options{}))
	h.waitLog("catch-up done", "catch-up done", 1)
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.Calls("conversations.history") == 0 {
			t.Error("the catch-up did not run at start")
		}
		if n := st.HistoryServed(); n != 0 {
			t.Errorf("the catch-up read %d messages already handled", n)
		}
	})
	if !strings.Contains(h.logs.String(), `"messages":0`) {
		t.Error("the catch-up did not report 0 messages")
	}
}

// TestCatchupAndLiveSeeTheSameMessage: a leak that arrives live while the
// catch-up reads the page holding it is recorded and deleted once, and does
// not hide the leak posted while the daemon was down.
func TestCatchupAndLiveSeeTheSameMessage(t *testing.T) {
	h := newCatchupHarness(t, fakeslack.Options{}, bot.Options{})
	_, before := h.post(fakeslack.Message{Text: "before"})
	h.wait("handled", func(st *fakeslack.State) bool { return st.Acked(before) })
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	// Slow history answers, so that the live event is recorded first, and a
	// slow chat.delete, so that the message is still there when the
	// catch-up reads it.
	h.slack.Script("conversations.history", fakeslack.Response{Delay: 1500 * time.Millisecond})
	h.slack.Script("chat.delete", fakeslack.Response{Delay: 3 * time.Second})
	older := h.quiet(fakeslack.Message{Text: "while down: 6759649826438461"})
	h.restart(catchupOpts(bot.Options{}))
	ts, _ := h.post(fakeslack.Message{Text: "card " + card}) // live, and in history
	h.waitLog("catch-up done", "catch-up done", 1)
	seenTwice := false
	for _, line := range strings.Split(h.logs.String(), "\n") {
		seenTwice = seenTwice || (strings.Contains(line, `"origin":"catch-up"`) && strings.Contains(line, "already recorded (seen before)"))
	}
	if !seenTwice {
		t.Fatal("the catch-up did not see the message the live path had recorded; the test did not test the overlap")
	}
	h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	// The live message moved the watermark past the one posted while the
	// daemon was down; the catch-up must still read that one.
	h.wait("the older one deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", older) == 1 })
	time.Sleep(300 * time.Millisecond) // a second deletion would have been queued by now
	h.slack.Snapshot(func(st *fakeslack.State) {
		if n := st.DeleteCalls("C0GENERAL01", ts); n != 1 {
			t.Errorf("%d chat.delete calls, want 1", n)
		}
	})
	if n := len(h.leaks(store.LeakFilter{})); n != 2 {
		t.Errorf("%d leaks recorded, want 2", n)
	}
}

// TestCatchupWaitsOutRateLimits: a storm of 429s (with Retry-After) on every
// history method slows the catch-up and loses nothing.
func TestCatchupWaitsOutRateLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (seconds of real waiting): not in -short")
	}
	h := newCatchupHarness(t, fakeslack.Options{}, bot.Options{})
	_, before := h.post(fakeslack.Message{Text: "before"})
	h.wait("handled", func(st *fakeslack.State) bool { return st.Acked(before) })
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	var leaks []string
	for i := range 6 {
		leaks = append(leaks, h.quiet(fakeslack.Message{Text: fmt.Sprintf("card 67596498264384%02d", 53+i*8)}))
		h.quiet(fakeslack.Message{Text: "clean"})
	}
	limited := fakeslack.Response{Status: 429, RetryAfter: "1"}
	h.slack.Script("users.conversations", limited)
	h.slack.Script("conversations.history", limited, limited, fakeslack.Response{Status: 500}, limited)
	h.restart(catchupOpts(bot.Options{}))
	for _, ts := range leaks {
		h.wait("deleted "+ts, func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	}
	if n := strings.Count(h.logs.String(), "waiting for Slack's rate limit"); n < 4 {
		t.Errorf("%d rate-limit waits logged, want 4", n)
	}
	if n := len(h.leaks(store.LeakFilter{})); n != len(leaks) {
		t.Errorf("%d leaks recorded, want %d", n, len(leaks))
	}
}

// TestCatchupAfterAReconnect: messages posted while the connection was down
// for longer than the gap are read when it is back.
func TestCatchupAfterAReconnect(t *testing.T) {
	h := newCatchupHarness(t, fakeslack.Options{}, bot.Options{})
	_, before := h.post(fakeslack.Message{Text: "before"})
	h.wait("handled", func(st *fakeslack.State) bool { return st.Acked(before) })
	// Keep it down for a while: apps.connections.open fails a few times.
	fail := fakeslack.Response{Status: 500}
	h.slack.Script("apps.connections.open", fail, fail, fail)
	h.slack.Drop()
	h.wait("disconnected", func(st *fakeslack.State) bool { return st.Connections() == 0 })
	ts := h.quiet(fakeslack.Message{Text: "while down: card " + card})
	h.wait("deleted after the reconnect", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	if !strings.Contains(h.logs.String(), `"why":"reconnect"`) {
		t.Error("no catch-up logged for the reconnect")
	}
}

// TestOutageLongerThanTheLookback: the catch-up reads only the look-back
// and alerts with the scan command that covers the rest.
func TestOutageLongerThanTheLookback(t *testing.T) {
	h := newCatchupHarness(t, fakeslack.Options{}, bot.Options{})
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	// The last run was two days ago.
	long := time.Now().Add(-48 * time.Hour)
	if err := h.store.SaveProgress(context.Background(), nil, long, true); err != nil {
		t.Fatal(err)
	}
	ts := h.quiet(fakeslack.Message{Text: "card " + card})
	h.restart(catchupOpts(bot.Options{Notify: bot.Notify{AlertChannel: "C0ALERTS001"}}))
	h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	want := "securechat scan --since " + long.UTC().Format(time.RFC3339)
	h.wait("the outage alert", func(st *fakeslack.State) bool {
		for _, p := range st.Posts() {
			if p.Channel == "C0ALERTS001" && strings.Contains(p.Text, want) && strings.Contains(p.Text, "were not scanned") {
				return true
			}
		}
		return false
	})
}

// TestRunStartsWithoutReadScopes: a token with the required scopes but none
// of the reader's starts, says which scope is missing and what does not work
// without it, and still deletes live leaks; the catch-up reads only the
// types it may list (public channels here).
func TestRunStartsWithoutReadScopes(t *testing.T) {
	fake := fakeslack.Options{Scopes: "chat:write,channels:history,groups:history,im:history,mpim:history,channels:read"}
	h := newCatchupHarness(t, fake, bot.Options{})
	for _, want := range []string{`"scope":"im:read"`, "catch-up skips direct messages", `"scope":"users:read"`, "user ids, not names"} {
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if strings.Contains(h.logs.String(), `"scope":"channels:read"`) {
		t.Error("channels:read reported missing")
	}
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("live leak deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	h.slack.SetConversation(fakeslack.Conversation{ID: "D0DMWITHADM", Type: "im", User: "U0MEMBER001"})
	dm := h.quiet(fakeslack.Message{Channel: "D0DMWITHADM", ChannelType: "im", User: fakeslack.AdminUserID, Text: "dm 6759649826438511"})
	pub := h.quiet(fakeslack.Message{Text: "card 6759649826438461"})
	h.restart(catchupOpts(bot.Options{}))
	h.wait("the public leak caught up", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", pub) == 1 })
	h.waitLog("catch-up done", "catch-up done", 1)
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.DeleteCalls("D0DMWITHADM", dm) != 0 {
			t.Error("the catch-up read a DM without im:read")
		}
	})
}

// TestAReconnectMakesTheWatermarksInexact: after a run that lost its
// connection, even briefly, the next start reads from before the
// watermarks (events posted meanwhile may have been lost to Slack's
// retries), though the stop itself was clean.
func TestAReconnectMakesTheWatermarksInexact(t *testing.T) {
	h := newCatchupHarness(t, fakeslack.Options{}, bot.Options{})
	h.slack.Drop()
	h.waitLog("reconnected", "connected to Slack over Socket Mode", 2)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	p, err := h.store.Presence(context.Background())
	if err != nil || p.LastConnected.IsZero() || p.Clean {
		t.Errorf("presence after a run with a reconnect = %+v, %v; want not clean", p, err)
	}
}

// TestInterruptedCatchupResumesItsWindow: a catch-up interrupted at a page
// boundary (a clean stop while it waits for the next page, or a page that
// fails), with a live message moving the watermark meanwhile, leaves its
// window in the database: the next start reads the rest of it, down to its
// lower bound, and the leak posted early in the outage is deleted once.
func TestInterruptedCatchupResumesItsWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (seconds of real waiting): not in -short")
	}
	for _, tt := range []struct {
		name     string
		boundary int // pages read before the interruption
		fail     bool
	}{
		{"stop after page 1", 1, false},
		{"stop after page 2", 2, false},
		{"page 2 fails", 1, true},
		{"page 3 fails", 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newCatchupHarness(t, fakeslack.Options{}, bot.Options{})
			before, _ := h.post(fakeslack.Message{Text: "before"})
			h.waitWatermark("C0GENERAL01", before)
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
			leak := h.quiet(fakeslack.Message{Text: "early in the outage: card " + card})
			for i := range 7 { // 8 messages: pages of 3, 3 and 2, newest first
				h.quiet(fakeslack.Message{Text: fmt.Sprintf("standup note %d", i)})
			}
			var script []fakeslack.Response
			for range tt.boundary {
				script = append(script, fakeslack.Response{})
			}
			interrupt := fakeslack.Response{Delay: 3 * time.Second}
			if tt.fail {
				interrupt = fakeslack.Response{Error: "internal_error"}
			}
			h.slack.Script("conversations.history", append(script, interrupt)...)
			o := catchupOpts(bot.Options{})
			o.Catchup.Retry = time.Hour // the restart, not the retry, reads the rest
			h.restart(o)
			if tt.fail {
				h.waitLog("the page failed", "catch-up failed", 1)
			} else {
				h.wait("waiting for the next page", func(st *fakeslack.State) bool { return st.Calls("conversations.history") > tt.boundary })
			}
			// A live message moves the watermark past the whole outage.
			live, _ := h.post(fakeslack.Message{Text: "live while catching up"})
			h.waitWatermark("C0GENERAL01", live)
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
			if ws, err := h.store.CatchupWindows(context.Background()); err != nil || len(ws) == 0 {
				t.Fatalf("no catch-up window left open after the interruption: %v, %v", ws, err)
			}
			h.slack.ClearScript("conversations.history")
			h.restart(catchupOpts(bot.Options{}))
			h.wait("the early leak deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", leak) == 1 })
			h.wait("every window read and closed", func(*fakeslack.State) bool {
				ws, err := h.store.CatchupWindows(context.Background())
				return err == nil && len(ws) == 0
			})
			h.slack.Snapshot(func(st *fakeslack.State) {
				if n := st.DeleteCalls("C0GENERAL01", leak); n != 1 {
					t.Errorf("%d chat.delete calls for the leak, want 1", n)
				}
			})
		})
	}
}

// TestUnreadableConversationClosesItsPart: a conversation the history
// answers not_in_channel for (the admin left it) is given up with a
// warning, so its window closes instead of being retried for ever.
func TestUnreadableConversationClosesItsPart(t *testing.T) {
	h := newCatchupHarness(t, fakeslack.Options{}, bot.Options{})
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	h.quiet(fakeslack.Message{Text: "while down"})
	h.slack.Script("conversations.history", fakeslack.Response{Error: "not_in_channel"})
	o := catchupOpts(bot.Options{})
	o.Catchup.Retry = 100 * time.Millisecond
	h.restart(o)
	h.waitLog("the conversation given up", "a conversation cannot be read", 1)
	h.wait("the window closed", func(*fakeslack.State) bool {
		ws, err := h.store.CatchupWindows(context.Background())
		return err == nil && len(ws) == 0
	})
	if strings.Contains(h.logs.String(), "catch-up failed") {
		t.Error("an unreadable conversation failed the catch-up (it would be retried for ever)")
	}
}
