package bot_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// TestDeleterCallsARoundAtOnce: a backlog is deleted a round of calls at a
// time, the calls of a round side by side (each claimed before, recorded
// after, in one commit per round), every message once, with one attempt
// each.
func TestDeleterCallsARoundAtOnce(t *testing.T) {
	h := newHarness(t, setup{noStart: true})
	const n, slow = 12, 800 * time.Millisecond
	var tss []string
	for range n {
		tss = append(tss, queueDeletion(t, h, h.store))
	}
	var delays []fakeslack.Response
	for range n {
		delays = append(delays, fakeslack.Response{Delay: slow})
	}
	h.slack.Script("chat.delete", delays...)
	h.restart(bot.Options{})
	h.waitDeleted(tss)
	h.slack.Snapshot(func(st *fakeslack.State) {
		calls := st.Deletes()
		if len(calls) != n {
			t.Fatalf("%d chat.delete calls for %d messages", len(calls), n)
		}
		// A deleter that waited for each answer before the next call would
		// have each call arrive after the one before was answered.
		overlapping := 0
		for _, c := range calls[1:] {
			if c.At.Before(calls[0].At.Add(slow)) {
				overlapping++
			}
		}
		if overlapping < 2 {
			t.Errorf("%d calls arrived while the first was in flight; want the round's calls side by side", overlapping)
		}
	})
	due, err := h.store.DueDeletions(t.Context(), time.Now().Add(time.Hour), 100)
	if err != nil || len(due) != 0 {
		t.Errorf("still due: %v, %v", due, err)
	}
}

// TestDeleterRoundAfterA429: a 429 in the middle of a round takes back that
// attempt and starts nothing until Retry-After has passed; what the round
// had not called yet waits too, uncharged. Every message is deleted once.
func TestDeleterRoundAfterA429(t *testing.T) {
	h := newHarness(t, setup{noStart: true})
	const n = 20
	var tss []string
	for range n {
		tss = append(tss, queueDeletion(t, h, h.store))
	}
	h.slack.Script("chat.delete", fakeslack.Response{Status: 429, RetryAfter: "2"})
	h.restart(bot.Options{})
	h.waitDeleted(tss)
	h.slack.Snapshot(func(st *fakeslack.State) {
		var limitedTS string
		var at time.Time
		for _, c := range st.Deletes() {
			if c.Status == 429 {
				limitedTS, at = c.TS, c.At
			}
		}
		if at.IsZero() {
			t.Fatal("no 429 was answered")
		}
		// The calls of the round that met the 429 were on their way
		// together; a call of any later round before Retry-After has
		// passed is one sent faster than Slack allows.
		early := 0
		for _, c := range st.Deletes() {
			if c.At.Before(at.Add(1900 * time.Millisecond)) {
				early++
			}
			if c.TS == limitedTS && c.Status != 429 && c.At.Before(at.Add(1900*time.Millisecond)) {
				t.Errorf("the rate-limited deletion was tried again %s after the 429 (Retry-After: 2)", c.At.Sub(at))
			}
		}
		if early > 8 {
			t.Errorf("%d chat.delete calls within Retry-After of a 429; want at most the one round already on its way", early)
		}
	})
	for _, l := range h.leaks(store.LeakFilter{}) {
		d, err := h.store.Deletion(t.Context(), l.DeletionID)
		if err != nil || d.Attempts != 1 {
			t.Errorf("deletion %d: %+v, %v; want one attempt (the 429 taken back)", l.DeletionID, d, err)
		}
	}
}

// waitDeleted waits until Slack deleted each message and the store
// recorded it (the outcome is written after Slack answered).
func (h *harness) waitDeleted(tss []string) {
	h.t.Helper()
	h.wait("every deletion", func(st *fakeslack.State) bool {
		for _, ts := range tss {
			if st.SuccessfulDeletes("C0GENERAL01", ts) != 1 {
				return false
			}
		}
		return true
	})
	deadline := time.Now().Add(15 * time.Second)
	for _, ts := range tss {
		for statusOf(h.t, h, ts) != store.StatusDeleted {
			if time.Now().After(deadline) {
				h.t.Fatalf("%s: %q, want deleted\nlogs:\n%s", ts, statusOf(h.t, h, ts), h.logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestRetryAfterOutlastsNewLeaks: after Slack answers chat.delete, or
// chat.postMessage, with a 429 and Retry-After: 2, leaks that keep coming
// (each of which wakes the deleter and the notifier) do not end the pause
// early: nothing is called before Retry-After has passed.
func TestRetryAfterOutlastsNewLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (seconds of real waiting): not in -short")
	}
	for _, method := range []string{"chat.delete", "chat.postMessage"} {
		t.Run(method, func(t *testing.T) {
			h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{AlertChannel: "C0ALERTS001"}}})
			h.slack.Script(method, fakeslack.Response{Status: 429, RetryAfter: "2"})
			first, _ := h.post(fakeslack.Message{Text: "card " + card})
			var limited time.Time
			if method == "chat.delete" {
				h.wait("the 429", func(st *fakeslack.State) bool {
					for _, c := range st.Deletes() {
						if c.Status == 429 {
							limited = c.At
							return true
						}
					}
					return false
				})
			} else {
				h.wait("the first deletion", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", first) == 1 })
				h.waitLog("the alert rate limited", `"result":"retry"`, 1)
				h.slack.Snapshot(func(st *fakeslack.State) { limited = st.Deletes()[0].At })
			}
			var more []string
			for i := range 4 {
				ts, _ := h.post(fakeslack.Message{Text: fmt.Sprintf("card 67596498264384%02d", 61+i*8)})
				more = append(more, ts)
				time.Sleep(100 * time.Millisecond)
			}
			h.waitDeleted(append(more, first))
			h.wait("every alert posted", func(st *fakeslack.State) bool { return len(postsTo(st, "chat.postMessage", "C0ALERTS001")) == 5 })
			h.slack.Snapshot(func(st *fakeslack.State) {
				if method == "chat.delete" {
					for _, c := range st.Deletes() {
						if c.At.After(limited) && c.At.Before(limited.Add(1900*time.Millisecond)) {
							t.Errorf("chat.delete called %s after a 429 with Retry-After: 2", c.At.Sub(limited))
						}
					}
					return
				}
				for _, p := range st.Posts() {
					if p.At.Before(limited.Add(1900 * time.Millisecond)) {
						t.Errorf("chat.postMessage sent %s after the deletion whose alert met a 429 with Retry-After: 2", p.At.Sub(limited))
					}
				}
			})
		})
	}
}

// TestClockStepBackDelaysNothing: the system clock steps back an hour
// while a deletion waits for its retry (due at the old clock's now plus a
// back-off); the retry is still made within the back-off, not an hour
// later.
func TestClockStepBackDelaysNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (seconds of real waiting): not in -short")
	}
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	h := newHarness(t, setup{noStart: true})
	h.slack.Script("chat.delete", fakeslack.Response{Status: 500}) // the first attempt is retried after a back-off
	h.restart(bot.Options{Now: now})
	ts := queueDeletion(t, h, h.store)
	h.wait("the first attempt's retry scheduled", func(*fakeslack.State) bool {
		ls := h.leaks(store.LeakFilter{})
		if len(ls) != 1 || ls[0].LastError == "" {
			return false
		}
		d, err := h.store.Deletion(t.Context(), ls[0].DeletionID)
		return err == nil && d.Status == store.StatusPending && d.NextAttemptAt.After(time.Now())
	})
	offset.Store(int64(-time.Hour))
	h.waitDeleted([]string{ts})
	if !strings.Contains(h.logs.String(), "the system clock stepped back") {
		t.Error("the clock step was not logged")
	}
}
