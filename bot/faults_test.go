package bot_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// TestLostAnswerOfASuccessfulDeleteEndsDeleted: chat.delete succeeded, but
// the daemon died before recording it (its claim stands, counted). The
// retry after the lease gets message_not_found, which must end as deleted,
// with the author told, not as failed.
func TestLostAnswerOfASuccessfulDeleteEndsDeleted(t *testing.T) {
	h := newHarness(t, setup{noStart: true})
	ts := queueDeletion(t, h, h.store)
	ctx := context.Background()
	due, err := h.store.DueDeletions(ctx, time.Now(), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due = %v, %v", due, err)
	}
	// The crashed daemon's claim, long expired, and its successful call.
	if _, ok, err := h.store.ClaimDeletion(ctx, due[0].ID, time.Now(), time.Millisecond); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	api := slack.New(h.slack.UserToken(), slack.OptionAPIURL(h.slack.APIURL()))
	if _, _, err := api.DeleteMessageContext(ctx, "C0GENERAL01", ts); err != nil {
		t.Fatal(err)
	}
	h.restart(bot.Options{Notify: bot.Notify{Author: "ephemeral"}})
	h.wait("the retry", func(st *fakeslack.State) bool { return st.DeleteCalls("C0GENERAL01", ts) == 2 })
	h.wait("the author's notice", func(st *fakeslack.State) bool { return len(st.Posts()) == 1 })
	if s := statusOf(t, h, ts); s != store.StatusDeleted {
		t.Errorf("status %q after a lost answer, want deleted", s)
	}
}

// TestRetryAfterZeroDoesNotSpin: a 429 with Retry-After: 0 waits a second
// all the same, for deletions and notices.
func TestRetryAfterZeroDoesNotSpin(t *testing.T) {
	h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{AlertChannel: "C0ALERTS01"}}})
	var burst []fakeslack.Response
	for range 50 {
		burst = append(burst, fakeslack.Response{Status: 429, RetryAfter: "0"})
	}
	h.slack.Script("chat.delete", burst...)
	h.slack.Script("chat.postMessage", burst...)
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("a first attempt", func(st *fakeslack.State) bool { return st.DeleteCalls("C0GENERAL01", ts) >= 1 })
	time.Sleep(1500 * time.Millisecond)
	h.slack.Snapshot(func(st *fakeslack.State) {
		if n := st.DeleteCalls("C0GENERAL01", ts); n > 3 {
			t.Errorf("%d chat.delete calls in 1.5 s after Retry-After: 0, want at most 3", n)
		}
	})
}

// TestTwoDaemonsSendEachNoticeOnce: two daemons on one database (and one
// workspace) share the outbox; each notification is claimed and sent once.
func TestTwoDaemonsSendEachNoticeOnce(t *testing.T) {
	// One post per alert (no digests), to count them.
	h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{AlertChannel: "C0ALERTS01", DigestAbove: -1}}})
	ctx, cancel := context.WithCancel(context.Background())
	second := bot.New(h.store, zerolog.New(h.logs), bot.Options{AppToken: h.slack.AppToken(), UserToken: h.slack.UserToken(),
		APIURL: h.slack.APIURL(), ReloadInterval: 100 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Notify: bot.Notify{AlertChannel: "C0ALERTS01", DigestAbove: -1}})
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h.wait("two connections", func(st *fakeslack.State) bool { return st.Connections() == 2 })
	// Slow posts keep both notifiers busy at once.
	var slow []fakeslack.Response
	for range 40 {
		slow = append(slow, fakeslack.Response{Delay: 20 * time.Millisecond})
	}
	h.slack.Script("chat.postMessage", slow...)
	const n = 20
	var tss []string
	for i := range n {
		ts, _ := h.post(fakeslack.Message{Text: "card " + card, User: "U0USER" + string(rune('A'+i))})
		tss = append(tss, ts)
	}
	h.wait("every alert", func(st *fakeslack.State) bool {
		alerts := 0
		for _, p := range st.Posts() {
			if p.Channel == "C0ALERTS01" {
				alerts++
			}
		}
		return alerts >= n
	})
	time.Sleep(500 * time.Millisecond) // a duplicate would be on its way by now
	h.slack.Snapshot(func(st *fakeslack.State) {
		seen := map[string]int{}
		for _, p := range st.Posts() {
			if p.Channel == "C0ALERTS01" {
				for _, ts := range tss {
					if strings.Contains(p.Text, ts) {
						seen[ts]++
					}
				}
			}
		}
		for _, ts := range tss {
			if seen[ts] != 1 {
				t.Errorf("the alert for %s was posted %d times", ts, seen[ts])
			}
		}
	})
}

// TestUnwritableOutcomeDoesNotResendInALoop: the alert is posted, but its
// outcome cannot be written (here a trigger refuses it, as a full disk or
// a read-only file would). The claim keeps the item leased: it is not sent
// again and again (it once was, 17,000 times in 2 s).
func TestUnwritableOutcomeDoesNotResendInALoop(t *testing.T) {
	h := newHarness(t, setup{noStart: true})
	db, err := sql.Open("sqlite3", h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse_sent BEFORE UPDATE OF status ON outbox WHEN NEW.status != 'pending'
		BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END`); err != nil {
		t.Fatal(err)
	}
	h.restart(bot.Options{Mode: bot.ModeMonitor, Notify: bot.Notify{AlertChannel: "C0ALERTS01"}})
	h.post(fakeslack.Message{Text: "card " + card})
	h.wait("the alert", func(st *fakeslack.State) bool { return len(st.Posts()) >= 1 })
	time.Sleep(2 * time.Second)
	h.slack.Snapshot(func(st *fakeslack.State) {
		if n := len(st.Posts()); n != 1 {
			t.Errorf("the alert was posted %d times in 2 s while its outcome could not be written, want 1", n)
		}
	})
	if !strings.Contains(h.logs.String(), "cannot record a notification's outcome") {
		t.Error("the failed outcome write was not logged")
	}
}
