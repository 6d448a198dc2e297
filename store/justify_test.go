package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

func finding(id int64, start int, mac string) []store.Finding {
	return []store.Finding{{RegexID: id, Rule: "r", Excerpt: "************8453", Start: start, End: start + 16, Action: store.ActionDelete, MAC: mac}}
}

// TestRuleIdsAreNeverReused: after the newest rule is removed, the next rule
// gets a new id, so it inherits none of the removed rule's findings: its
// queued deletion is cancelled at the claim, and 'scan --enforce' queues
// nothing for its history findings.
func TestRuleIdsAreNeverReused(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	s.AddRegex(ctx, `6759[0-9]{12}`, "cards")
	old, err := s.AddRegex(ctx, `tok_[a-z]{10}`, "tokens")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordLeak(ctx, store.Message{Channel: "C1", User: "U1", TS: "1.000100", Origin: store.OriginHistory}, finding(old.ID, 0, ""), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteRegex(ctx, old.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	next, err := s.AddRegex(ctx, `.{3}new[0-9]{5}`, "new rule")
	if err != nil {
		t.Fatal(err)
	}
	if next.ID == old.ID {
		t.Fatalf("the new rule took the removed rule's id %d", old.ID)
	}
	if n, err := s.EnforceHistory(ctx, false); err != nil || n != 0 {
		t.Errorf("scan --enforce queued %d, %v; want 0", n, err)
	}
	if hits, err := s.HitCounts(ctx); err != nil || hits[next.ID] != 0 {
		t.Errorf("the new rule's hits = %v, %v; want 0", hits, err)
	}
}

// TestJustifiedChecksTheRuleAsItIsNow: a queued deletion whose only finding
// predates its rule's current definition (a database where an id was
// reused before the upgrade) or whose value was allowlisted since is
// cancelled by the claim, not sent; one still justified is claimed.
func TestJustifiedChecksTheRuleAsItIsNow(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	r, _ := s.AddRegex(ctx, `6759[0-9]{12}`, "cards")
	record := func(ts, mac string) int64 {
		t.Helper()
		res, err := s.RecordLeak(ctx, store.Message{Channel: "C1", User: "U1", TS: ts}, finding(r.ID, 0, mac), true)
		if err != nil {
			t.Fatal(err)
		}
		return res.DeletionID
	}
	claim := func(ids ...int64) []store.Claim {
		t.Helper()
		claims, err := s.ClaimDeletions(ctx, ids, time.Now().Add(time.Hour), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return claims
	}
	status := func(id int64) string {
		d, err := s.Deletion(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return d.Status
	}
	// The value allowlisted since: cancelled; the other one: claimed.
	kept := record("1.000100", strings.Repeat("a", 64))
	allowed := record("1.000200", strings.Repeat("b", 64))
	ls, _ := s.Leaks(ctx, store.LeakFilter{DeletionID: allowed})
	if _, err := s.AllowValue(ctx, ls[0].ID, "a test card"); err != nil {
		t.Fatal(err)
	}
	if c := claim(kept, allowed); len(c) != 1 || c[0].ID != kept || status(allowed) != store.StatusCancelled {
		t.Errorf("claims %+v, allowlisted deletion %s; want only the other claimed, it cancelled", c, status(allowed))
	}
	// A finding recorded before the rule's current definition (what the
	// migration sets for a rule that took a removed rule's id): cancelled;
	// one after it: claimed.
	old := record("1.000300", "")
	ls, _ = s.Leaks(ctx, store.LeakFilter{DeletionID: old})
	raw(t, path, `UPDATE regexes SET defined_after_leak = ?`, ls[0].ID)
	fresh := record("1.000400", strings.Repeat("c", 64))
	if c := claim(old, fresh); len(c) != 1 || c[0].ID != fresh || status(old) != store.StatusCancelled {
		t.Errorf("claims %+v, older finding's deletion %s; want only the fresh one claimed, the older cancelled", c, status(old))
	}
}

// TestNewFindingGetsItsOwnDecision: an edit that adds a new secret to a
// message whose deletion was cancelled, held or had failed makes the
// deletion pending again; the same findings again (a redelivery), or the
// same secret moved by an edit, do not: an admin's cancel stands.
func TestNewFindingGetsItsOwnDecision(t *testing.T) {
	for _, was := range []string{store.StatusCancelled, store.StatusHeld, store.StatusFailed} {
		t.Run(was, func(t *testing.T) {
			ctx := context.Background()
			s, path := openTemp(t)
			r, _ := s.AddRegex(ctx, `6759[0-9]{12}`, "cards")
			msg := store.Message{Channel: "C1", User: "U1", TS: "1.000100"}
			res, err := s.RecordLeak(ctx, msg, finding(r.ID, 0, ""), true)
			if err != nil {
				t.Fatal(err)
			}
			raw(t, path, `UPDATE deletions SET status = ? WHERE id = ?`, was, res.DeletionID)
			again, err := s.RecordLeak(ctx, msg, finding(r.ID, 0, ""), true)
			if err != nil || again.NewLeaks != 0 || again.Requeued {
				t.Errorf("redelivery: %+v, %v", again, err)
			}
			// An edit that only moves the same value (another offset) is a
			// new leak row, not a new value: the decision stands.
			moved, err := s.RecordLeak(ctx, msg, finding(r.ID, 12, ""), true)
			if err != nil || moved.NewLeaks != 1 || moved.Requeued {
				t.Errorf("edit that moved the same secret: %+v, %v", moved, err)
			}
			if d, _ := s.Deletion(ctx, res.DeletionID); d.Status != was {
				t.Errorf("deletion after an edit that moved the secret: %s, want %s", d.Status, was)
			}
			other := []store.Finding{{RegexID: r.ID, Rule: "r", Excerpt: "************8461", Start: 30, End: 46, Action: store.ActionDelete}}
			edit, err := s.RecordLeak(ctx, msg, other, true)
			if err != nil || edit.NewLeaks != 1 || !edit.Requeued || !edit.NewDeletion || edit.Reopened != was {
				t.Errorf("edit with a new secret: %+v, %v", edit, err)
			}
			if d, err := s.Deletion(ctx, res.DeletionID); err != nil || d.Status != store.StatusPending {
				t.Errorf("deletion after the edit: %+v, %v", d, err)
			}
		})
	}
}

// raw runs SQL on the database behind the store's back (an admin with the
// sqlite3 shell, or a database from an earlier release).
func raw(t *testing.T, path, q string, args ...any) {
	t.Helper()
	if _, err := rawDB(t, path).Exec(rebind(path, q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestResumeByRuleLeavesMonitorModeAlone: 'leaks resume --rule ID' resumes
// what the breaker held for the rule, not what monitor mode held; naming
// the leak resumes that one.
func TestResumeByRuleLeavesMonitorModeAlone(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	r, _ := s.AddRegex(ctx, `6759[0-9]{12}`, "cards")
	monitorHeld, _ := s.RecordLeak(ctx, store.Message{Channel: "C1", User: "U1", TS: "1.000100"}, finding(r.ID, 0, ""), true)
	if _, err := s.HoldPending(ctx, store.HoldMonitor); err != nil {
		t.Fatal(err)
	}
	breakerHeld, _ := s.RecordLeak(ctx, store.Message{Channel: "C1", User: "U1", TS: "1.000200"}, finding(r.ID, 0, ""), true)
	raw(t, path, `UPDATE deletions SET status = 'held', hold_reason = 'breaker: regex 1' WHERE id = ?`, breakerHeld.DeletionID)
	n, err := s.ResumeDeletions(ctx, store.Selection{RegexID: r.ID}, "")
	if err != nil || n != 1 {
		t.Fatalf("resume --rule = %d, %v; want 1", n, err)
	}
	for id, want := range map[int64]string{monitorHeld.DeletionID: store.StatusHeld, breakerHeld.DeletionID: store.StatusPending} {
		if d, _ := s.Deletion(ctx, id); d.Status != want {
			t.Errorf("deletion %d is %s, want %s", id, d.Status, want)
		}
	}
	ls, _ := s.Leaks(ctx, store.LeakFilter{DeletionID: monitorHeld.DeletionID})
	if n, err := s.ResumeDeletions(ctx, store.Selection{LeakIDs: []int64{ls[0].ID}}, ""); err != nil || n != 1 {
		t.Errorf("resume by leak id = %d, %v; want 1", n, err)
	}
}

// TestRemaskReachesEscapedExcerpts: the upgrade's re-masking finds an
// excerpt holding &, < or > in the pending notifications, where it is
// escaped for Slack and then for JSON (an alert's text, a webhook body).
func TestRemaskReachesEscapedExcerpts(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	const old = "p&<>ssword-wide-o"
	remasked := detect.Remask(old)
	if remasked == old {
		t.Fatal("the test excerpt is not re-masked by the current policy")
	}
	slack := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
	alert, _ := json.Marshal(map[string]string{"channel": "C0ALERTS001", "text": "leak: `" + slack(old) + "`"})
	body, _ := json.Marshal(map[string]string{"excerpt": old})
	hook, _ := json.Marshal(map[string]json.RawMessage{"body": body})
	raw(t, path, `INSERT INTO leaks (channel, user_id, ts, regex_id, rule, excerpt, start_offset, end_offset, detected_at) VALUES ('C1', 'U1', '1.1', 1, 'r', ?, 0, 17, 1)`, old)
	for _, p := range []string{string(alert), string(hook)} {
		raw(t, path, `INSERT INTO outbox (kind, payload, status, next_attempt_at, created_at, updated_at) VALUES ('alert', ?, 'pending', 1, 1, 1)`, p)
	}
	raw(t, path, `UPDATE meta SET value = 1 WHERE key = 'remask_pending'`)
	if _, err := s.RemaskExcerpts(ctx, detect.Remask); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueOutbox(ctx, time.Now(), 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("outbox = %+v, %v", due, err)
	}
	for _, it := range due {
		if strings.Contains(it.Payload, "ssword") || !strings.Contains(it.Payload, "*************-o") {
			t.Errorf("a pending notification still shows the old excerpt: %s", it.Payload)
		}
	}
}

// TestBreakerLimitIsExactAcrossDaemons: two daemons (two handles on one
// database) record leaks of one rule at once; the breaker, weighed in each
// recording transaction, lets exactly MaxDeletions deletions through and
// trips the rule once.
func TestBreakerLimitIsExactAcrossDaemons(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	r, _ := a.AddRegex(ctx, `6759[0-9]{12}`, "cards")
	lim := store.Breaker{Window: time.Hour, MaxDeletions: 5, MaxShare: 1, MinScanned: 1 << 30, Now: time.Now(),
		Reason: func(why string) string { return "breaker: " + why },
		Notes:  func(store.Finding, string) []store.OutboxItem { return nil }}
	notes := func([]store.Finding, bool) []store.OutboxItem { return nil }
	var wg sync.WaitGroup
	var mu sync.Mutex
	trips := 0
	for d, st := range []*store.Store{a, b} {
		wg.Go(func() {
			for i := range 20 {
				m := store.Message{Channel: "C1", User: "U1", TS: fmt.Sprintf("%d.%06d", d+1, i)}
				_, _, tr, err := st.RecordLeakWeighed(ctx, m, finding(r.ID, 0, ""), true, lim, notes)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				trips += len(tr)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	counts, err := a.DeletionCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if queued := counts[store.StatusPending] + counts[store.StatusHeld]; queued != lim.MaxDeletions || trips != 1 {
		t.Errorf("%d deletions queued (%v), %d trips; want exactly %d and 1", queued, counts, trips, lim.MaxDeletions)
	}
	if got, _ := a.Regex(ctx, r.ID); got.Action != store.ActionMonitor {
		t.Errorf("the rule after the trip: %+v", got)
	}
}

// TestBreakerCountsARedeliveryOnce: at the limit, an event redelivered for
// a message whose deletion is queued already trips nothing: it adds no
// deletion.
func TestBreakerCountsARedeliveryOnce(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	r, _ := s.AddRegex(ctx, `6759[0-9]{12}`, "cards")
	lim := store.Breaker{Window: time.Hour, MaxDeletions: 3, MaxShare: 1, MinScanned: 1 << 30, Now: time.Now(),
		Reason: func(why string) string { return "breaker: " + why },
		Notes:  func(store.Finding, string) []store.OutboxItem { return nil }}
	notes := func([]store.Finding, bool) []store.OutboxItem { return nil }
	record := func(ts string) []store.Trip {
		t.Helper()
		_, _, trips, err := s.RecordLeakWeighed(ctx, store.Message{Channel: "C1", User: "U1", TS: ts}, finding(r.ID, 0, ""), true, lim, notes)
		if err != nil {
			t.Fatal(err)
		}
		return trips
	}
	for i := range lim.MaxDeletions {
		if trips := record(fmt.Sprintf("1.%06d", i)); len(trips) != 0 {
			t.Fatalf("message %d tripped the breaker under its limit", i)
		}
	}
	if trips := record("1.000000"); len(trips) != 0 {
		t.Errorf("a redelivery at the limit tripped the breaker: %+v", trips)
	}
	if trips := record("1.000099"); len(trips) != 1 {
		t.Errorf("a new message past the limit: %d trips, want 1", len(trips))
	}
}

// TestCatchupProgressOfAClosedWindow: progress saved for a window another
// daemon closed meanwhile is dropped, without an error.
func TestCatchupProgressOfAClosedWindow(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	id, err := s.OpenCatchupWindow(ctx, store.CatchupWindow{Since: time.Now(), FloorTS: "1.000000", Why: "start"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCatchupProgress(ctx, id, "C1", store.CatchupProgress{Oldest: "1.000000", Latest: "2.000000"}); err != nil {
		t.Fatal(err)
	}
	if ws, _ := s.CatchupWindows(ctx); len(ws) != 1 || ws[0].Progress["C1"].Latest != "2.000000" {
		t.Fatalf("windows = %+v", ws)
	}
	if err := s.CloseCatchupWindow(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCatchupProgress(ctx, id, "C2", store.CatchupProgress{Oldest: "1.000000", Done: true}); err != nil {
		t.Errorf("progress of a closed window: %v", err)
	}
	if ws, _ := s.CatchupWindows(ctx); len(ws) != 0 {
		t.Errorf("a closed window came back: %+v", ws)
	}
}
