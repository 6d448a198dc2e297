package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// TestBreakerStopsARunawayRule: a rule that matches most clean traffic
// deletes at most the breaker's limit, then nothing; it is switched to
// monitor with the reason, and the alert channel hears it, with the command
// that resumes it.
func TestBreakerStopsARunawayRule(t *testing.T) {
	tests := []struct {
		name  string
		cfg   bot.Breaker
		limit int    // deletions at most
		says  string // in the alert
	}{
		{"too many deletions", bot.Breaker{Enabled: true, MaxDeletions: 5, MaxShare: 1, MinScanned: 1000, Window: time.Minute}, 5, "6 deletions in 1m0s (the limit is 5)"},
		{"too large a share", bot.Breaker{Enabled: true, MaxDeletions: 1000, MaxShare: 0.2, MinScanned: 10, Window: time.Minute}, 10, "(the limit is 20.0%)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, setup{patterns: []string{`(?i)lunch`}, opts: bot.Options{Breaker: tt.cfg,
				Notify: bot.Notify{AlertChannel: "C0ALERTS01"}}})
			var envs, tss []string
			for range 30 {
				ts, env := h.post(fakeslack.Message{Text: "lunch?"})
				envs, tss = append(envs, env), append(tss, ts)
			}
			h.wait("all acked", acked(envs...))
			h.wait("the alert", func(st *fakeslack.State) bool {
				for _, p := range st.Posts() {
					if strings.Contains(p.Text, "runaway-rule breaker switched regex 1") {
						return true
					}
				}
				return false
			})
			time.Sleep(500 * time.Millisecond) // the deleter has had its chance
			h.slack.Snapshot(func(st *fakeslack.State) {
				deleted := 0
				for _, ts := range tss {
					deleted += st.SuccessfulDeletes("C0GENERAL01", ts)
				}
				if deleted > tt.limit {
					t.Errorf("%d messages deleted, want at most %d", deleted, tt.limit)
				}
				for _, p := range st.Posts() {
					if strings.Contains(p.Text, "breaker") && (!strings.Contains(p.Text, tt.says) || !strings.Contains(p.Text, "securechat regex update 1 --action delete")) {
						t.Errorf("alert %q lacks %q or the resume command", p.Text, tt.says)
					}
				}
			})
			r, err := h.store.Regex(context.Background(), 1)
			if err != nil || r.Action != store.ActionMonitor || !strings.Contains(r.TrippedReason, "runaway-rule breaker") {
				t.Errorf("the rule after the trip: %+v, %v", r, err)
			}
			if n := len(h.leaks(store.LeakFilter{Action: store.ActionMonitor})); n == 0 {
				t.Error("no leak was recorded as monitor after the trip")
			}
			// What was queued before the trip was deleted or is held; no more.
			queued := len(h.leaks(store.LeakFilter{Status: store.StatusDeleted})) + len(h.leaks(store.LeakFilter{Status: store.StatusHeld})) +
				len(h.leaks(store.LeakFilter{Status: store.StatusPending}))
			if queued == 0 || queued > tt.limit {
				t.Errorf("%d deletions queued before the trip, want 1 to %d", queued, tt.limit)
			}
		})
	}
}

// TestTrialRuleRecordsThenEnforces: a rule in trial records and alerts but
// deletes nothing; when its trial ends the daemon switches it to delete and
// tells the alert channel once, and the next match is deleted.
func TestTrialRuleRecordsThenEnforces(t *testing.T) {
	h := newHarness(t, setup{patterns: []string{}, noStart: true})
	end := time.Now().Add(1500 * time.Millisecond)
	r, err := h.store.AddRule(context.Background(), store.Regex{Pattern: `6759[0-9]{12}`, Description: "cards on trial",
		Enabled: true, Action: store.ActionMonitor, TrialUntil: &end})
	if err != nil {
		t.Fatal(err)
	}
	h.restart(bot.Options{Notify: bot.Notify{AlertChannel: "C0ALERTS001"}})
	during, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("recorded during the trial", func(*fakeslack.State) bool { return len(h.leaks(store.LeakFilter{})) == 1 })
	h.wait("the trial's end alerted", func(st *fakeslack.State) bool {
		for _, p := range st.Posts() {
			if p.Channel == "C0ALERTS001" && strings.Contains(p.Text, "trial of regex") {
				return true
			}
		}
		return false
	})
	// The alert can go out before the rules are reloaded (a reload takes
	// seconds under the race detector): post once the new ones are in force.
	h.waitLog("the rules reloaded after the trial", `"rules loaded"`, 2)
	after, _ := h.post(fakeslack.Message{Text: "card 6759649826438461"})
	h.wait("deleted after the trial", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", after) == 1 })
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.DeleteCalls("C0GENERAL01", during) != 0 {
			t.Error("a message matched during the trial was deleted")
		}
		n := 0
		for _, p := range st.Posts() {
			if strings.Contains(p.Text, "trial of regex") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d trial-end alerts, want 1", n)
		}
	})
	got, err := h.store.Regex(context.Background(), r.ID)
	if err != nil || got.Action != store.ActionDelete || got.TrialUntil != nil {
		t.Errorf("after the trial: %+v, %v", got, err)
	}
}
