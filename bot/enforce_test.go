package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// restart stops the harness's daemon and starts a new one on the same
// store and fake Slack, with opts.
func (h *harness) restart(opts bot.Options) {
	h.t.Helper()
	if h.cancel != nil {
		if err := h.stop(); err != nil {
			h.t.Fatalf("stop: %v", err)
		}
	}
	opts.AppToken, opts.UserToken, opts.APIURL = h.slack.AppToken(), h.slack.UserToken(), h.slack.APIURL()
	opts.ReloadInterval, opts.RetryMax = 100*time.Millisecond, 200*time.Millisecond
	h.daemon = bot.New(h.store, zerolog.New(h.logs).Level(zerolog.TraceLevel), opts)
	h.start()
	h.wait("connected", func(st *fakeslack.State) bool { return st.Connections() >= 1 })
}

// queueDeletion posts a leaking message in the fake (no event sent) and
// queues its deletion in st, as an earlier run would have.
func queueDeletion(t *testing.T, h *harness, st *store.Store) string {
	t.Helper()
	p, err := h.slack.Prepare(fakeslack.Message{Text: "card " + card})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordLeak(context.Background(), store.Message{Channel: "C0GENERAL01", User: "U0MEMBER001", TS: p.TS},
		[]store.Finding{{RegexID: 1, Rule: "cards", Excerpt: "************8453", Start: 5, End: 21, Action: store.ActionDelete}}, true); err != nil {
		t.Fatal(err)
	}
	return p.TS
}

func statusOf(t *testing.T, h *harness, ts string) string {
	t.Helper()
	for _, l := range h.leaks(store.LeakFilter{}) {
		if l.TS == ts {
			return l.Status
		}
	}
	t.Fatalf("no leak for ts %s", ts)
	return ""
}

// TestMonitorModeHoldsQueuedDeletions: deletions queued before a restart in
// monitor mode (a 429 backlog, say) are held, not carried out; when the
// daemon enforces again the young ones resume, and one older than
// resume_max_age waits for 'leaks resume'.
func TestMonitorModeHoldsQueuedDeletions(t *testing.T) {
	h := newHarness(t, setup{noStart: true})
	young := queueDeletion(t, h, h.store)
	past, err := store.Open(context.Background(), h.dbPath, store.WithClock(func() time.Time { return time.Now().Add(-48 * time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	old := queueDeletion(t, h, past)
	past.Close()

	h.restart(bot.Options{Mode: bot.ModeMonitor})
	// A leak posted now is recorded, not queued; the clean message proves
	// the pipeline ran, and so had time to act.
	tsLive, envLive := h.post(fakeslack.Message{Text: "new card " + card})
	_, envClean := h.post(fakeslack.Message{Text: "lunch?"})
	h.wait("both acked", acked(envLive, envClean))
	time.Sleep(300 * time.Millisecond) // the deleter would have run by now
	h.slack.Snapshot(func(st *fakeslack.State) {
		if n := len(st.Deletes()); n != 0 {
			t.Errorf("monitor mode called chat.delete %d times", n)
		}
	})
	if s := statusOf(t, h, young); s != store.StatusHeld {
		t.Errorf("queued deletion is %q in monitor mode, want held", s)
	}
	if s := statusOf(t, h, tsLive); s != store.LeakMonitored {
		t.Errorf("a leak found in monitor mode has status %q, want monitored", s)
	}

	h.restart(bot.Options{Mode: bot.ModeEnforce})
	h.wait("the young held deletion resumed", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", young) == 1 })
	if s := statusOf(t, h, old); s != store.StatusHeld {
		t.Errorf("a held deletion older than resume_max_age is %q, want still held", s)
	}
	if !strings.Contains(h.logs.String(), "securechat leaks resume") {
		t.Error("the log does not say how to resume the older held deletion")
	}
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.DeleteCalls("C0GENERAL01", old) != 0 {
			t.Error("the old held deletion was carried out")
		}
	})
}

// TestCancelledDeletionIsNeverCarriedOut: a deletion cancelled (here by
// removing its only rule) is not deleted by a running daemon, even one
// that was retrying it.
func TestCancelledDeletionIsNeverCarriedOut(t *testing.T) {
	h := newHarness(t, setup{})
	h.slack.Script("chat.delete", fakeslack.Response{Status: 500}, fakeslack.Response{Status: 500}, fakeslack.Response{Status: 500})
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("a failed attempt", func(st *fakeslack.State) bool { return st.DeleteCalls("C0GENERAL01", ts) >= 1 })
	n, err := h.store.DeleteRegex(context.Background(), 1, "tester")
	if err != nil || n != 1 {
		t.Fatalf("DeleteRegex cancelled %d, %v", n, err)
	}
	h.slack.ClearScript("chat.delete")
	_, env := h.post(fakeslack.Message{Text: "after"})
	h.wait("ack", acked(env))
	time.Sleep(time.Second) // past the retry back-off (RetryMax 200ms)
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.SuccessfulDeletes("C0GENERAL01", ts) != 0 {
			t.Error("a cancelled deletion was carried out")
		}
	})
	if s := statusOf(t, h, ts); s != store.StatusCancelled {
		t.Errorf("status %q, want cancelled", s)
	}
}

// TestSecretInTextAndBlocksIsOneLeak: Slack sends a message's text and its
// rich_text blocks; block text is plain, not markup, so a secret next to
// a & or < must still be recognised as the same one.
func TestSecretInTextAndBlocksIsOneLeak(t *testing.T) {
	h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{Author: "ephemeral"}}})
	ts, _ := h.post(fakeslack.Message{Text: "R&D <card> " + card + " & more"})
	h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	h.wait("notice", func(st *fakeslack.State) bool { return len(st.Posts()) >= 1 })
	if ls := h.leaks(store.LeakFilter{}); len(ls) != 1 {
		t.Errorf("%d leak rows for one secret sent in text and blocks: %+v", len(ls), ls)
	}
	time.Sleep(200 * time.Millisecond)
	h.slack.Snapshot(func(st *fakeslack.State) {
		if n := len(st.Posts()); n != 1 {
			t.Errorf("%d notices for one message, want 1", n)
		}
	})
}

// TestOversizedStoredRuleIsDisabledWithTheReason: a rule stored before the
// cost limit (here written behind the CLI's back) is disabled with the
// reason 'regex list' shows, and the others keep working.
func TestOversizedStoredRuleIsDisabledWithTheReason(t *testing.T) {
	h := newHarness(t, setup{noStart: true})
	big, err := h.store.AddRule(context.Background(), store.Regex{Pattern: `[A-Za-z0-9+/]{1000}[A-Za-z0-9+/]{1000}`, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	h.restart(bot.Options{})
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("the other rule still deletes", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	r, err := h.store.Regex(context.Background(), big.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Enabled || !strings.Contains(r.DisabledReason, "2002 instructions") {
		t.Errorf("oversized rule: enabled %v, reason %q", r.Enabled, r.DisabledReason)
	}
}

// TestRuleTurnedOffByHandDeletesNothingMore: a deletion queued (and being
// retried) when its rule is disabled straight in the database, not through
// the CLI, is not carried out: the deleter checks the rule for deleting
// when it claims it.
func TestRuleTurnedOffByHandDeletesNothingMore(t *testing.T) {
	h := newHarness(t, setup{})
	h.slack.Script("chat.delete", fakeslack.Response{Status: 500})
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("a failed attempt", func(st *fakeslack.State) bool { return st.DeleteCalls("C0GENERAL01", ts) >= 1 })
	db := lockFreeDB(t, h.dbPath)
	if _, err := db.Exec(`UPDATE regexes SET enabled = 0`); err != nil {
		t.Fatal(err)
	}
	_, env := h.post(fakeslack.Message{Text: "after"})
	h.wait("ack", acked(env))
	time.Sleep(time.Second) // past the retry back-off (RetryMax 200ms)
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.SuccessfulDeletes("C0GENERAL01", ts) != 0 {
			t.Error("a deletion of a disabled rule was carried out")
		}
	})
	if s := statusOf(t, h, ts); s != store.StatusCancelled {
		t.Errorf("status %q, want cancelled", s)
	}
}

// TestEditAddingASecretReopensACancelledDeletion: an admin cancelled the
// deletion of a message (a false positive); the author then edits it to
// add a real secret. The new finding gets its own decision: the message is
// deleted, and the log says why.
func TestEditAddingASecretReopensACancelledDeletion(t *testing.T) {
	h := newHarness(t, setup{noStart: true, opts: bot.Options{Notify: bot.Notify{AlertChannel: "C0ALERTS001"}}})
	ctx := context.Background()
	ts := h.quiet(fakeslack.Message{Text: "card " + card})
	if _, err := h.store.RecordLeak(ctx, store.Message{Channel: "C0GENERAL01", User: "U0MEMBER001", TS: ts},
		[]store.Finding{{RegexID: 1, Rule: "cards", Excerpt: "************8453", Start: 5, End: 21, Action: store.ActionDelete}}, true); err != nil {
		t.Fatal(err)
	}
	if n, err := h.store.CancelDeletions(ctx, store.Selection{All: true}, "admin", "a test card"); err != nil || n != 1 {
		t.Fatalf("cancel = %d, %v", n, err)
	}
	h.restart(bot.Options{Notify: bot.Notify{AlertChannel: "C0ALERTS001"}})
	if _, err := h.slack.Edit("C0GENERAL01", ts, "card "+card+" and the real one 6759649826438461"); err != nil {
		t.Fatal(err)
	}
	h.wait("the edited message deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	h.waitLog("the reason logged", "new findings after its deletion was cancelled", 1)
	h.wait("the admins alerted", func(st *fakeslack.State) bool {
		for _, p := range st.Posts() {
			if p.Channel == "C0ALERTS001" && strings.Contains(p.Text, "8461") {
				return true
			}
		}
		return false
	})
}
