package store_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/store"
)

// TestClaimDeletionsInOneRound claims a batch in one transaction: the due,
// justified ones are claimed in order; one another daemon holds, one not due
// and one whose rule was disabled behind the store's back are not (the last
// is cancelled).
func TestClaimDeletionsInOneRound(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s, path := openTemp(t, store.WithClock(func() time.Time { return now }))
	other, err := store.Open(ctx, path, store.WithDatabaseClock(false))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	a, _ := s.AddRegex(ctx, "aaa+", "a")
	b, _ := s.AddRegex(ctx, "bbb+", "b")
	var ids []int64
	for i, rule := range []int64{a.ID, a.ID, a.ID, a.ID, b.ID} {
		res, err := s.RecordLeak(ctx, store.Message{Channel: "C1", User: "U1", TS: "1." + strconv.Itoa(i)},
			[]store.Finding{{RegexID: rule, Excerpt: "****", Action: store.ActionDelete}}, true)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.DeletionID)
	}
	if _, ok, _ := other.ClaimDeletion(ctx, ids[1], now, time.Minute); !ok {
		t.Fatal("the other daemon's claim")
	}
	if err := s.RetryDeletion(ctx, ids[2], "500", now.Add(time.Hour)); err != nil { // not due
		t.Fatal(err)
	}
	if _, err := rawDB(t, path).Exec(rebind(path, `UPDATE regexes SET enabled = 0 WHERE id = ?`), b.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimDeletions(ctx, ids, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if first := ""; len(got) == 2 && got[0].Token != "" {
		first = got[0].Token
		for i := range got {
			if got[i].Token != first {
				t.Errorf("one round's claims have different tokens: %v", got)
			}
			got[i].Token = ""
		}
	}
	if want := []store.Claim{{ID: ids[0], Attempts: 0}, {ID: ids[3], Attempts: 0}}; !slices.Equal(got, want) {
		t.Errorf("claimed %v, want %v with a token", got, want)
	}
	for _, c := range got {
		if d, _ := s.Deletion(ctx, c.ID); d.Attempts != 1 || !d.NextAttemptAt.Equal(now.Add(time.Minute)) {
			t.Errorf("claimed deletion %d: %+v; want one attempt counted and the lease", c.ID, d)
		}
	}
	// The other daemon's attempt at ids[1] lost its answer; its lease runs
	// out. A claim made with a read of the queue from before that attempt
	// still learns of it: message_not_found will then mean deleted.
	if again, err := s.ClaimDeletions(ctx, ids[1:2], now.Add(2*time.Minute), time.Minute); err != nil || len(again) != 1 || again[0].Attempts != 1 {
		t.Errorf("claim after a lost answer = %v, %v; want one earlier attempt", again, err)
	}
	if d, _ := s.Deletion(ctx, ids[4]); d.Status != store.StatusCancelled {
		t.Errorf("deletion of a disabled rule's finding: %q, want cancelled", d.Status)
	}
	if again, _ := other.ClaimDeletions(ctx, ids, now.Add(time.Second), time.Minute); len(again) != 0 {
		t.Errorf("a second daemon claimed %v within the leases", again)
	}
}

// TestRecordOutcomesInOneTransaction writes a round's outcomes at once:
// each its own result, with its notes; one no longer pending is reported,
// not written, and does not stop the others; a write that fails leaves
// every outcome of the round unwritten (the claims stand: the round is
// tried again after the lease).
func TestRecordOutcomesInOneTransaction(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s, path := openTemp(t, store.WithClock(func() time.Time { return now }))
	r, _ := s.AddRegex(ctx, "aaa+", "a")
	var ids, leaks []int64
	for i := range 5 {
		l := queue(t, s, "2."+strconv.Itoa(i), store.Finding{RegexID: r.ID, Excerpt: "****", Action: store.ActionDelete})
		ls, _ := s.Leaks(ctx, store.LeakFilter{ID: l})
		ids, leaks = append(ids, ls[0].DeletionID), append(leaks, l)
	}
	if got, err := s.ClaimDeletions(ctx, ids, now, time.Minute); err != nil || len(got) != 5 {
		t.Fatalf("claims = %v, %v", got, err)
	}
	// Cancelled by an admin while the calls were in flight.
	if n, err := s.CancelDeletions(ctx, store.Selection{LeakIDs: leaks[1:3]}, "alice", "false positive"); err != nil || n != 2 {
		t.Fatalf("cancel = %d, %v", n, err)
	}

	// A write that fails (a trigger stands in for a full disk) writes nothing.
	refuse := `CREATE TRIGGER refuse BEFORE UPDATE OF status ON deletions WHEN NEW.id = ` + itoa(ids[4]) +
		` BEGIN SELECT RAISE(ABORT, 'disk full'); END`
	if store.IsPostgres(path) {
		refuse = `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$;
			CREATE TRIGGER refuse BEFORE UPDATE OF status ON deletions FOR EACH ROW WHEN (NEW.id = ` + itoa(ids[4]) + `) EXECUTE FUNCTION refuse()`
	}
	if _, err := rawDB(t, path).Exec(refuse); err != nil {
		t.Fatal(err)
	}
	round := []store.Outcome{
		{ID: ids[0], Status: store.StatusDeleted, Notes: []store.OutboxItem{{Kind: "alert", Payload: `{"text":"deleted"}`}}},
		{ID: ids[1], Status: store.StatusDeleted},                                          // cancelled, but it did happen
		{ID: ids[2], Status: store.StatusPending, Reason: "500", Next: now.Add(time.Hour)}, // cancelled: stays cancelled
		{ID: ids[3], Status: store.StatusPending, Deferred: true, Next: now.Add(30 * time.Second)},
		{ID: ids[4], Status: store.StatusFailed, Reason: "cant_delete_message"},
	}
	if _, err := s.RecordOutcomes(ctx, round); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("RecordOutcomes with a refused write = %v, want the error", err)
	}
	for i, want := range []string{store.StatusPending, store.StatusCancelled, store.StatusCancelled, store.StatusPending, store.StatusPending} {
		if d, _ := s.Deletion(ctx, ids[i]); d.Status != want || d.Attempts != 1 {
			t.Errorf("deletion %d after a failed round write: %q with %d attempts, want %q with its claimed one", i, d.Status, d.Attempts, want)
		}
	}
	if c, _ := s.OutboxCounts(ctx); c["alert"]["pending"] != 0 {
		t.Errorf("a failed round write queued notes: %v", c)
	}
	drop := `DROP TRIGGER refuse`
	if store.IsPostgres(path) {
		drop += ` ON deletions`
	}
	if _, err := rawDB(t, path).Exec(drop); err != nil {
		t.Fatal(err)
	}

	errs, err := s.RecordOutcomes(ctx, round)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, nil, store.ErrNotFound, nil, nil} {
		if !errors.Is(errs[i], want) {
			t.Errorf("outcome %d: %v, want %v", i, errs[i], want)
		}
	}
	for i, want := range []string{store.StatusDeleted, store.StatusDeleted, store.StatusCancelled, store.StatusPending, store.StatusFailed} {
		if d, _ := s.Deletion(ctx, ids[i]); d.Status != want {
			t.Errorf("deletion %d: %q, want %q", i, d.Status, want)
		}
	}
	if d, _ := s.Deletion(ctx, ids[3]); d.Attempts != 0 || !d.NextAttemptAt.Equal(now.Add(30*time.Second)) {
		t.Errorf("deferred: %+v; want its attempt taken back and due in 30 s", d)
	}
	if c, _ := s.OutboxCounts(ctx); c["alert"]["pending"] != 1 {
		t.Errorf("notes queued: %v, want the one alert", c)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
