package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/store"
)

// queue records one message per finding set and returns its leaks' ids.
func queue(t *testing.T, s *store.Store, ts string, fs ...store.Finding) int64 {
	t.Helper()
	res, err := s.RecordLeak(context.Background(), store.Message{Channel: "C1", User: "U1", TS: ts}, fs, true)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := s.Leaks(context.Background(), store.LeakFilter{DeletionID: res.DeletionID})
	if err != nil || len(ls) == 0 {
		t.Fatalf("leaks of %s: %v %v", ts, ls, err)
	}
	return ls[0].ID
}

func status(t *testing.T, s *store.Store, leakID int64) string {
	t.Helper()
	ls, err := s.Leaks(context.Background(), store.LeakFilter{ID: leakID})
	if err != nil || len(ls) != 1 {
		t.Fatalf("leak %d: %v %v", leakID, ls, err)
	}
	return ls[0].Status
}

func TestRuleChangesCancelOnlyUnjustifiedDeletions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	a, _ := s.AddRegex(ctx, "aaa+", "a")
	b, _ := s.AddRegex(ctx, "bbb+", "b")
	c, _ := s.AddRegex(ctx, "ccc+", "c")
	onlyA := queue(t, s, "1.1", store.Finding{RegexID: a.ID, Excerpt: "a", Action: "delete"})
	aAndB := queue(t, s, "1.2", store.Finding{RegexID: a.ID, Excerpt: "a", Action: "delete", Start: 0, End: 3},
		store.Finding{RegexID: b.ID, Excerpt: "b", Action: "delete", Start: 4, End: 7})
	onlyC := queue(t, s, "1.3", store.Finding{RegexID: c.ID, Excerpt: "c", Action: "delete"})

	n, err := s.DeleteRegex(ctx, a.ID, "alice")
	if err != nil || n != 1 {
		t.Fatalf("DeleteRegex cancelled %d, %v; want 1 (the message only regex a justified)", n, err)
	}
	if status(t, s, onlyA) != store.StatusCancelled || status(t, s, aAndB) != store.StatusPending {
		t.Errorf("after rm: only-a %s, a-and-b %s", status(t, s, onlyA), status(t, s, aAndB))
	}
	if n, err := s.SetRegexEnabled(ctx, b.ID, false, "alice"); err != nil || n != 1 || status(t, s, aAndB) != store.StatusCancelled {
		t.Errorf("disable b cancelled %d (%v); a-and-b is %s", n, err, status(t, s, aAndB))
	}
	mon := store.ActionMonitor
	if _, n, err := s.UpdateRegex(ctx, c.ID, store.RegexUpdate{Action: &mon}, "alice"); err != nil || n != 1 || status(t, s, onlyC) != store.StatusCancelled {
		t.Errorf("c to monitor cancelled %d (%v); only-c is %s", n, err, status(t, s, onlyC))
	}
	due, _ := s.DueDeletions(ctx, time.Now().Add(time.Hour), 10)
	if len(due) != 0 {
		t.Errorf("cancelled deletions are still due: %+v", due)
	}
}

func TestCancelHoldResume(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s, _ := openTemp(t, store.WithClock(func() time.Time { return clock }))
	r, _ := s.AddRegex(ctx, "aaa+", "a")
	f := store.Finding{RegexID: r.ID, Excerpt: "a", Action: "delete"}
	old := queue(t, s, "1.1", f)
	clock = clock.Add(48 * time.Hour)
	young := queue(t, s, "1.2", f)
	other := queue(t, s, "1.3", f)

	if n, err := s.HoldPending(ctx, store.HoldMonitor); err != nil || n != 3 {
		t.Fatalf("HoldPending = %d, %v", n, err)
	}
	if due, _ := s.DueDeletions(ctx, clock.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("held deletions are due: %+v", due)
	}
	if n, err := s.CancelDeletions(ctx, store.Selection{LeakIDs: []int64{other}}, "bob", "asked"); err != nil || n != 1 {
		t.Fatalf("cancel = %d, %v", n, err)
	}
	resumed, still, err := s.ResumeHeld(ctx, store.HoldMonitor, clock.Add(-24*time.Hour))
	if err != nil || resumed != 1 || still != 1 {
		t.Fatalf("ResumeHeld = %d resumed, %d still held, %v; want 1, 1", resumed, still, err)
	}
	if status(t, s, young) != store.StatusPending || status(t, s, old) != store.StatusHeld || status(t, s, other) != store.StatusCancelled {
		t.Errorf("young %s, old %s, other %s", status(t, s, young), status(t, s, old), status(t, s, other))
	}
	if n, err := s.ResumeDeletions(ctx, store.Selection{LeakIDs: []int64{old}}, ""); err != nil || n != 1 || status(t, s, old) != store.StatusPending {
		t.Errorf("explicit resume = %d, %v; old is %s", n, err, status(t, s, old))
	}
	if n, _ := s.ResumeDeletions(ctx, store.Selection{LeakIDs: []int64{other}}, ""); n != 0 {
		t.Error("a cancelled deletion was resumed")
	}
	if _, err := s.CancelDeletions(ctx, store.Selection{LeakIDs: []int64{999}}, "bob", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancel of a missing leak = %v, want ErrNotFound", err)
	}
	if n, err := s.CancelDeletions(ctx, store.Selection{All: true}, "bob", "all"); err != nil || n != 2 {
		t.Errorf("cancel --all-pending = %d, %v; want 2", n, err)
	}
	// A call in flight when its deletion was cancelled: the message is gone,
	// and that is what is recorded.
	due, _ := s.DueDeletions(ctx, clock.Add(time.Hour), 10)
	if len(due) != 0 {
		t.Fatalf("due after cancel: %+v", due)
	}
	ls, _ := s.Leaks(ctx, store.LeakFilter{ID: young})
	if err := s.MarkDeleted(ctx, ls[0].DeletionID); err != nil || status(t, s, young) != store.StatusDeleted {
		t.Errorf("MarkDeleted after cancel: %v, status %s", err, status(t, s, young))
	}
	ls, _ = s.Leaks(ctx, store.LeakFilter{ID: old})
	if err := s.RetryDeletion(ctx, ls[0].DeletionID, "x", clock); !errors.Is(err, store.ErrNotFound) || status(t, s, old) != store.StatusCancelled {
		t.Errorf("a retry must not revive a cancelled deletion: %v, %s", err, status(t, s, old))
	}
}

// TestNewFindingsAfterAFailedDeletionTryAgain: an edit that adds a secret
// to a message whose deletion failed queues a new attempt.
func TestNewFindingsAfterAFailedDeletionTryAgain(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if _, err := s.AddRegex(ctx, "aaa+", "a"); err != nil {
		t.Fatal(err)
	}
	msg := store.Message{Channel: "C1", User: "U1", TS: "1.1"}
	res, err := s.RecordLeak(ctx, msg, []store.Finding{{RegexID: 1, Excerpt: "a", Start: 0, End: 4, Action: "delete"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.ClaimDeletion(ctx, res.DeletionID, time.Now(), time.Second); !ok {
		t.Fatal("claim")
	}
	if err := s.FailDeletion(ctx, res.DeletionID, "internal_error (gave up)"); err != nil {
		t.Fatal(err)
	}
	again, err := s.RecordLeak(ctx, msg, []store.Finding{{RegexID: 1, Excerpt: "b", Start: 10, End: 14, Action: "delete"}}, true)
	if err != nil || !again.Requeued || !again.NewDeletion || again.DeletionID != res.DeletionID {
		t.Fatalf("after an edit with a new finding: %+v, %v", again, err)
	}
	d, _ := s.Deletion(ctx, res.DeletionID)
	if d.Status != store.StatusPending || !strings.Contains(d.LastError, "new findings") {
		t.Errorf("deletion = %+v, want pending again", d)
	}
	// A redelivery of the same edit changes nothing.
	if r, _ := s.RecordLeak(ctx, msg, []store.Finding{{RegexID: 1, Excerpt: "b", Start: 10, End: 14, Action: "delete"}}, true); r.NewLeaks != 0 || r.Requeued {
		t.Errorf("redelivered edit: %+v", r)
	}
}

// TestClaimChecksTheRuleForDeleting: a rule switched off behind the CLI's
// back (by hand, by the breaker, by the cost limit) leaves its queued
// deletion unclaimable: it is cancelled with the reason, never carried out.
func TestClaimChecksTheRuleForDeleting(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	r, _ := s.AddRegex(ctx, "aaa+", "a")
	id := queue(t, s, "1.1", store.Finding{RegexID: r.ID, Excerpt: "a", Action: "delete"})
	if _, err := rawDB(t, path).Exec(`UPDATE regexes SET enabled = 0`); err != nil {
		t.Fatal(err)
	}
	ls, _ := s.Leaks(ctx, store.LeakFilter{ID: id})
	if _, ok, err := s.ClaimDeletion(ctx, ls[0].DeletionID, time.Now(), time.Minute); err != nil || ok {
		t.Fatalf("claim of an unjustified deletion = %v, %v; want false", ok, err)
	}
	ls, _ = s.Leaks(ctx, store.LeakFilter{ID: id})
	if ls[0].Status != store.StatusCancelled || !strings.Contains(ls[0].CancelReason, "no enabled delete rule") {
		t.Errorf("after the claim: %+v", ls[0])
	}
}

// TestResumeByRule resumes the held deletions of one rule (the breaker's
// case) and leaves the others held.
func TestResumeByRule(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	a, _ := s.AddRegex(ctx, "aaa+", "a")
	b, _ := s.AddRegex(ctx, "bbb+", "b")
	la := queue(t, s, "1.1", store.Finding{RegexID: a.ID, Excerpt: "a", Action: "delete"})
	lb := queue(t, s, "1.2", store.Finding{RegexID: b.ID, Excerpt: "b", Action: "delete"})
	if _, err := s.HoldPending(ctx, "breaker: regex 1"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ResumeDeletions(ctx, store.Selection{RegexID: a.ID}, ""); err != nil || n != 1 {
		t.Fatalf("resume --rule = %d, %v", n, err)
	}
	if status(t, s, la) != store.StatusPending || status(t, s, lb) != store.StatusHeld {
		t.Errorf("a %s, b %s", status(t, s, la), status(t, s, lb))
	}
	if _, err := s.ResumeDeletions(ctx, store.Selection{}, ""); err == nil {
		t.Error("an empty selection resumed something")
	}
}
