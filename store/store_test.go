package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securechat/securechat/store"
)

func openTemp(t *testing.T, opts ...store.Option) (*store.Store, string) {
	t.Helper()
	path := newTarget(t)
	// The tests drive time through the now they pass to claims.
	opts = append([]store.Option{store.WithDatabaseClock(false)}, opts...)
	s, err := store.Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// openTwo opens two stores on one new database (two connection pools, as
// two processes have).
func openTwo(t *testing.T) (*store.Store, *store.Store) {
	t.Helper()
	a, path := openTemp(t)
	b, err := store.Open(context.Background(), path, store.WithDatabaseClock(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	sqliteOnly(t)
	_, path := openTemp(t)
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestOpenTwiceMigratesOnce(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if _, err := s.AddRegex(ctx, "abc+", "first"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := store.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	rs, err := s2.Regexes(ctx)
	if err != nil || len(rs) != 1 || rs[0].Pattern != "abc+" {
		t.Fatalf("after reopen Regexes = %v, %v", rs, err)
	}
}

func TestOpenRejectsNonDatabase(t *testing.T) {
	sqliteOnly(t)
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database at all "), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := store.Open(context.Background(), path)
	if !errors.Is(err, store.ErrNotDatabase) {
		t.Fatalf("Open(junk) = %v, want ErrNotDatabase", err)
	}
}

func TestRegexCRUD(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s, _ := openTemp(t, store.WithClock(func() time.Time { return now }))

	gen0, err := s.RulesGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.AddRegex(ctx, `ghp_[0-9a-zA-Z]{36}`, "GitHub token")
	if err != nil {
		t.Fatal(err)
	}
	if r1.ID == 0 || !r1.Enabled || !r1.CreatedAt.Equal(now) {
		t.Errorf("AddRegex returned %+v", r1)
	}
	_, err = s.AddRegex(ctx, `ghp_[0-9a-zA-Z]{36}`, "again")
	var dup *store.DuplicateError
	if !errors.Is(err, store.ErrDuplicate) || !errors.As(err, &dup) || dup.ID != r1.ID {
		t.Fatalf("duplicate AddRegex = %v, want DuplicateError naming %d", err, r1.ID)
	}
	r2, err := s.AddRegex(ctx, `AKIA[A-Z2-7]{16}`, "")
	if err != nil {
		t.Fatal(err)
	}
	gen1, _ := s.RulesGeneration(ctx)
	if gen1 <= gen0 {
		t.Errorf("generation %d after adds, was %d", gen1, gen0)
	}
	if _, err := s.SetRegexEnabled(ctx, r2.ID, false, "test"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Regex(ctx, r2.ID)
	if err != nil || got.Enabled {
		t.Errorf("after disable Regex = %+v, %v", got, err)
	}
	gen2, _ := s.RulesGeneration(ctx)
	if gen2 <= gen1 {
		t.Errorf("generation %d after update, was %d", gen2, gen1)
	}
	if _, err := s.DeleteRegex(ctx, r1.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteRegex(ctx, r1.ID, "test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteRegex = %v, want ErrNotFound", err)
	}
	if _, err := s.Regex(ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Regex(999) = %v, want ErrNotFound", err)
	}
	gen3, _ := s.RulesGeneration(ctx)
	if gen3 <= gen2 {
		t.Errorf("generation %d after delete, was %d", gen3, gen2)
	}
	all, _ := s.Regexes(ctx)
	if len(all) != 1 || all[0].ID != r2.ID {
		t.Errorf("Regexes = %+v", all)
	}
}

func TestRecordLeakIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	msg := store.Message{Channel: "C1", User: "U1", TS: "1700000000.000100"}
	fs := []store.Finding{
		{RegexID: 1, Rule: "Maestro", Excerpt: "6759********8453", Start: 11, End: 27},
		{RegexID: 2, Rule: "AWS", Excerpt: "AKIA************MPL2", Start: 30, End: 50},
	}
	res, err := s.RecordLeak(ctx, msg, fs, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.NewLeaks != 2 || !res.NewDeletion || res.DeletionID == 0 {
		t.Fatalf("first RecordLeak = %+v", res)
	}
	// A redelivered event: nothing new.
	again, err := s.RecordLeak(ctx, msg, fs, true)
	if err != nil {
		t.Fatal(err)
	}
	if again.NewLeaks != 0 || again.NewDeletion || again.DeletionID != res.DeletionID {
		t.Fatalf("redelivered RecordLeak = %+v, want no change", again)
	}
	// An edit of the same message with a new finding: a new leak, the same deletion.
	edit, err := s.RecordLeak(ctx, msg, []store.Finding{{RegexID: 1, Excerpt: "6761****1090", Start: 0, End: 12}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if edit.NewLeaks != 1 || edit.NewDeletion || edit.DeletionID != res.DeletionID {
		t.Fatalf("edit RecordLeak = %+v", edit)
	}
	leaks, err := s.Leaks(ctx, store.LeakFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(leaks) != 3 {
		t.Fatalf("got %d leaks, want 3", len(leaks))
	}
	for _, l := range leaks {
		if l.Status != store.StatusPending || l.Channel != "C1" || l.User != "U1" {
			t.Errorf("leak %+v", l)
		}
	}
	counts, _ := s.DeletionCounts(ctx)
	if counts[store.StatusPending] != 1 {
		t.Errorf("pending deletions = %d, want 1", counts[store.StatusPending])
	}
	// Monitor-only findings queue no deletion.
	mon, err := s.RecordLeak(ctx, store.Message{Channel: "C2", TS: "1.2"}, fs[:1], false)
	if err != nil || mon.DeletionID != 0 || mon.NewLeaks != 1 {
		t.Fatalf("monitor RecordLeak = %+v, %v", mon, err)
	}
}

func TestLeaksFilters(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s, _ := openTemp(t, store.WithClock(func() time.Time { return clock }))
	for i := range 5 {
		clock = clock.Add(time.Hour)
		ch := "C1"
		if i%2 == 1 {
			ch = "C2"
		}
		if _, err := s.RecordLeak(ctx, store.Message{Channel: ch, User: "U1", TS: fmt.Sprintf("17.%d", i)},
			[]store.Finding{{RegexID: int64(i%2 + 1), Excerpt: "x***", Start: 0, End: 4}}, true); err != nil {
			t.Fatal(err)
		}
	}
	due, _ := s.DueDeletions(ctx, clock, 10)
	if err := s.MarkDeleted(ctx, due[0].ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    store.LeakFilter
		want []string // ts, newest first
	}{
		{"all", store.LeakFilter{}, []string{"17.4", "17.3", "17.2", "17.1", "17.0"}},
		{"limit", store.LeakFilter{Limit: 2}, []string{"17.4", "17.3"}},
		{"channel", store.LeakFilter{Channel: "C2"}, []string{"17.3", "17.1"}},
		{"since", store.LeakFilter{Since: clock.Add(-90 * time.Minute)}, []string{"17.4", "17.3"}},
		{"status deleted", store.LeakFilter{Status: store.StatusDeleted}, []string{"17.0"}},
		{"regex", store.LeakFilter{RegexID: 2}, []string{"17.3", "17.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaks, err := s.Leaks(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range leaks {
				got = append(got, l.TS)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Leaks(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

func TestDeletionLifecycle(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s, _ := openTemp(t, store.WithClock(func() time.Time { return now }))
	if _, err := s.AddRegex(ctx, "abc+", "the rule the findings are of"); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 3 {
		r, err := s.RecordLeak(ctx, store.Message{Channel: "C1", TS: strconv.Itoa(i)}, []store.Finding{{RegexID: 1, Excerpt: "****"}}, true)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.DeletionID)
	}
	due, err := s.DueDeletions(ctx, now, 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("DueDeletions = %v, %v", due, err)
	}
	for _, id := range ids {
		if _, ok, err := s.ClaimDeletion(ctx, id, now, time.Second); err != nil || !ok {
			t.Fatalf("claim %d: %v %v", id, ok, err)
		}
	}
	if err := s.MarkDeleted(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.RetryDeletion(ctx, ids[1], "slack answered 500", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.FailDeletion(ctx, ids[2], "cant_delete_message"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDeleted(ctx, ids[2]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkDeleted on a failed deletion = %v, want ErrNotFound", err)
	}
	if due, _ := s.DueDeletions(ctx, now, 10); len(due) != 0 {
		t.Errorf("due now = %v, want none", due)
	}
	next, ok, err := s.NextDeletionAt(ctx)
	if err != nil || !ok || !next.Equal(now.Add(time.Minute)) {
		t.Errorf("NextDeletionAt = %v, %v, %v", next, ok, err)
	}
	due, _ = s.DueDeletions(ctx, now.Add(time.Minute), 10)
	if len(due) != 1 || due[0].ID != ids[1] || due[0].Attempts != 1 || due[0].LastError != "slack answered 500" {
		t.Errorf("due after a minute = %+v", due)
	}
	if _, ok, _ := s.ClaimDeletion(ctx, ids[1], now.Add(time.Minute), time.Second); !ok {
		t.Fatal("claim of the retry")
	}
	if err := s.DeferDeletion(ctx, ids[1], now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	d, _ := s.Deletion(ctx, ids[1])
	if d.Attempts != 1 || !d.NextAttemptAt.Equal(now.Add(time.Hour)) {
		t.Errorf("after defer: %+v", d)
	}
	// A rate-limited call deleted nothing: its claimed attempt is taken back.
	if _, ok, _ := s.ClaimDeletion(ctx, ids[1], now.Add(time.Hour), time.Second); !ok {
		t.Fatal("claim after the defer")
	}
	if err := s.DeferDeletion(ctx, ids[1], now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Deletion(ctx, ids[1]); d.Attempts != 1 {
		t.Errorf("a 429 counted as an attempt: %+v", d)
	}
	counts, _ := s.DeletionCounts(ctx)
	if counts[store.StatusDeleted] != 1 || counts[store.StatusFailed] != 1 || counts[store.StatusPending] != 1 {
		t.Errorf("counts = %v", counts)
	}
	failed, _ := s.Leaks(ctx, store.LeakFilter{Status: store.StatusFailed})
	if len(failed) != 1 || failed[0].LastError != "cant_delete_message" {
		t.Errorf("failed leaks = %+v", failed)
	}
}

// TestConcurrentWriters writes from two stores (two connection pools, as the
// CLI and the daemon have) at once: no "database is locked" may surface.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for w, s := range []*store.Store{a, b} {
		wg.Go(func() {
			for i := range 100 {
				_, err := s.RecordLeak(ctx, store.Message{Channel: "C" + strconv.Itoa(w), TS: strconv.Itoa(i)},
					[]store.Finding{{RegexID: 1, Excerpt: "****"}}, true)
				if err != nil {
					errs <- err
				}
				if _, err := s.AddRegex(ctx, fmt.Sprintf("w%dp%d[0-9]+", w, i), ""); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write: %v", err)
	}
	leaks, _ := a.Leaks(ctx, store.LeakFilter{})
	rs, _ := b.Regexes(ctx)
	if len(leaks) != 200 || len(rs) != 200 {
		t.Errorf("got %d leaks and %d regexes, want 200 each", len(leaks), len(rs))
	}
}

// TestConcurrentProcesses runs a second OS process that writes while this one
// does: the CLI and the daemon are separate processes in real use.
func TestConcurrentProcesses(t *testing.T) {
	if os.Getenv("STORE_HELPER_DB") != "" {
		helperWriter(t)
		return
	}
	ctx := context.Background()
	s, path := openTemp(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentProcesses$")
	cmd.Env = append(os.Environ(), "STORE_HELPER_DB="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		if _, err := s.RecordLeak(ctx, store.Message{Channel: "PARENT", TS: strconv.Itoa(i)},
			[]store.Finding{{RegexID: 1, Excerpt: "****"}}, true); err != nil {
			t.Errorf("parent write %d: %v", i, err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out.String())
	}
	leaks, _ := s.Leaks(ctx, store.LeakFilter{})
	if len(leaks) != 300 {
		t.Errorf("got %d leaks, want 300", len(leaks))
	}
}

func helperWriter(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, os.Getenv("STORE_HELPER_DB"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 150 {
		if _, err := s.RecordLeak(ctx, store.Message{Channel: "CHILD", TS: strconv.Itoa(i)},
			[]store.Finding{{RegexID: 1, Excerpt: "****"}}, true); err != nil {
			t.Fatalf("child write %d: %v", i, err)
		}
	}
}

func TestClaimDeletionIsExclusive(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s, path := openTemp(t, store.WithClock(func() time.Time { return now }))
	other, err := store.Open(ctx, path, store.WithDatabaseClock(false))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := s.AddRegex(ctx, "abc+", "the rule"); err != nil {
		t.Fatal(err)
	}
	r, err := s.RecordLeak(ctx, store.Message{Channel: "C1", TS: "1.1"}, []store.Finding{{RegexID: 1, Excerpt: "****"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	_, ok1, err1 := s.ClaimDeletion(ctx, r.DeletionID, now, 30*time.Second)
	_, ok2, err2 := other.ClaimDeletion(ctx, r.DeletionID, now, 30*time.Second)
	if err1 != nil || err2 != nil || !ok1 || ok2 {
		t.Fatalf("claims = %v/%v, %v/%v; want exactly the first", ok1, err1, ok2, err2)
	}
	if due, _ := s.DueDeletions(ctx, now.Add(10*time.Second), 10); len(due) != 0 {
		t.Error("a claimed deletion is due again within its lease")
	}
	if _, ok, _ := other.ClaimDeletion(ctx, r.DeletionID, now.Add(31*time.Second), 30*time.Second); !ok {
		t.Error("a deletion whose lease ran out (a crashed attempt) could not be claimed again")
	}
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s, _ := openTemp(t, store.WithClock(func() time.Time { return now }))
	// Queued with a monitored leak, only when the leak is new.
	note := store.OutboxItem{Kind: store.KindAlert, Payload: `{"text":"x"}`}
	for range 2 {
		if _, err := s.RecordLeak(ctx, store.Message{Channel: "C1", TS: "1.1"}, []store.Finding{{RegexID: 1, Excerpt: "****", Action: store.ActionMonitor}}, false, note); err != nil {
			t.Fatal(err)
		}
	}
	due, err := s.DueOutbox(ctx, now, 10)
	if err != nil || len(due) != 1 || due[0].Kind != store.KindAlert {
		t.Fatalf("due = %+v, %v; want the one alert (a redelivery queues nothing)", due, err)
	}
	token, err := s.ClaimOutbox(ctx, due[0].ID, now, time.Minute)
	if err != nil || token == "" {
		t.Fatalf("claim = %q, %v", token, err)
	}
	if again, _ := s.ClaimOutbox(ctx, due[0].ID, now, time.Minute); again != "" {
		t.Error("a claimed notification was claimed again (a second daemon would send it twice)")
	}
	if again, _ := s.DueOutbox(ctx, now.Add(30*time.Second), 10); len(again) != 0 {
		t.Error("a claimed notification is due again before its lease passed")
	}
	if err := s.FinishOutbox(ctx, due[0].ID, token, store.OutboxPending, "HTTP 500", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if next, ok, _ := s.NextOutboxAt(ctx); !ok || !next.Equal(now.Add(time.Minute)) {
		t.Errorf("next = %v %v", next, ok)
	}
	retry, _ := s.ClaimOutbox(ctx, due[0].ID, now.Add(time.Minute), time.Minute)
	if retry == "" {
		t.Fatal("the retry could not be claimed")
	}
	if err := s.FinishOutbox(ctx, due[0].ID, token, store.OutboxSent, "", now); !errors.Is(err, store.ErrClaimLost) {
		t.Errorf("the first claim's outcome after the retry's claim = %v, want ErrClaimLost", err)
	}
	if err := s.FinishOutbox(ctx, due[0].ID, retry, store.OutboxSent, "", now); err != nil {
		t.Fatal(err)
	}
	if it, _ := s.DueOutbox(ctx, now.Add(time.Hour), 10); len(it) != 0 {
		t.Errorf("a sent notification is due: %+v", it)
	}
	counts, _ := s.OutboxCounts(ctx)
	if counts[store.KindAlert][store.OutboxSent] != 1 {
		t.Errorf("counts = %v", counts)
	}
	now = now.Add(8 * 24 * time.Hour)
	if n, err := s.PruneOutbox(ctx, now.Add(-7*24*time.Hour)); err != nil || n != 1 {
		t.Errorf("pruned %d, %v; want 1", n, err)
	}
}

// TestWatermarksOnlyMoveForward: two daemons saving their watermarks in any
// order leave the newest; the presence is the last one written.
func TestWatermarksOnlyMoveForward(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := s.SaveProgress(ctx, map[string]string{"C1": "1764580000.000200", "C2": "1764580000.000100"}, at, false); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveProgress(ctx, map[string]string{"C1": "1764580000.000100", "C2": "1764580001.000000"}, at.Add(time.Second), true); err != nil {
		t.Fatal(err)
	}
	wm, err := s.Watermarks(ctx)
	if err != nil || wm["C1"] != "1764580000.000200" || wm["C2"] != "1764580001.000000" {
		t.Errorf("watermarks = %v, %v", wm, err)
	}
	p, err := s.Presence(ctx)
	if err != nil || !p.LastConnected.Equal(at.Add(time.Second)) || !p.Clean {
		t.Errorf("presence = %+v, %v", p, err)
	}
	// Without a connection time, only the watermarks change.
	if err := s.SaveProgress(ctx, nil, time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Presence(ctx); !p.Clean {
		t.Error("a save without a connection time changed the presence")
	}
}

// TestHistoryFindingSeenLiveIsDeleted: a message a sweep recorded (no
// deletion) and then seen live by a delete rule gets its deletion, counted
// as new (so its notices go out); the breaker's load counts live
// deletions only.
func TestHistoryFindingSeenLiveIsDeleted(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	r, err := s.AddRegex(ctx, `6759[0-9]{12}`, "cards")
	if err != nil {
		t.Fatal(err)
	}
	f := []store.Finding{{RegexID: r.ID, Excerpt: "************8453", Start: 5, End: 21, Action: store.ActionDelete}}
	msg := store.Message{Channel: "C1", User: "U1", TS: "1764580000.000100", Origin: store.OriginHistory}
	if res, err := s.RecordLeak(ctx, msg, f, false); err != nil || res.NewLeaks != 1 || res.DeletionID != 0 {
		t.Fatalf("history record = %+v, %v", res, err)
	}
	if l, _ := s.RuleLoad(ctx, r.ID, time.Unix(0, 0)); l.Deletions != 0 {
		t.Errorf("a history finding counts %d deletions for the breaker", l.Deletions)
	}
	n, err := s.EnforceHistory(ctx, false)
	if err != nil || n != 1 {
		t.Fatalf("EnforceHistory = %d, %v", n, err)
	}
	if l, _ := s.RuleLoad(ctx, r.ID, time.Unix(0, 0)); l.Deletions != 0 {
		t.Errorf("an enforced history finding counts %d deletions for the breaker", l.Deletions)
	}
	// A second message: recorded by a sweep, then seen live.
	msg.TS = "1764580000.000200"
	if _, err := s.RecordLeak(ctx, msg, f, false); err != nil {
		t.Fatal(err)
	}
	msg.Origin = ""
	res, err := s.RecordLeak(ctx, msg, f, true)
	if err != nil || res.NewLeaks != 1 || !res.NewDeletion {
		t.Fatalf("live record after the sweep = %+v, %v", res, err)
	}
	ls, _ := s.Leaks(ctx, store.LeakFilter{})
	for _, l := range ls {
		if l.Status != store.StatusPending || l.Origin != store.OriginHistory {
			t.Errorf("leak %s: status %q origin %q", l.TS, l.Status, l.Origin)
		}
	}
	due, _ := s.DueDeletions(ctx, time.Now().Add(time.Hour), 10)
	for _, d := range due {
		if _, ok, err := s.ClaimDeletion(ctx, d.ID, time.Now(), time.Minute); err != nil || !ok {
			t.Errorf("claim %s: %v %v (the deletion must be justified)", d.TS, ok, err)
		}
	}
}

// TestEnforceHistoryQueuesOnlyWhatIsStillJustified: scan --enforce leaves
// out a value allowlisted since the sweep, a rule switched to monitor, a DM
// and a message whose deletion was cancelled; the dry run counts exactly
// what the real run queues.
func TestEnforceHistoryQueuesOnlyWhatIsStillJustified(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	cards, _ := s.AddRegex(ctx, `6759[0-9]{12}`, "cards")
	keys, _ := s.AddRegex(ctx, `AKIA[0-9A-Z]{16}`, "keys")
	rec := func(ch, ts string, id int64, mac string) {
		t.Helper()
		f := []store.Finding{{RegexID: id, Excerpt: "************8453", Start: 1, End: 17, Action: store.ActionDelete, MAC: mac}}
		typ := map[byte]string{'C': "channel", 'D': "im", 'G': "mpim"}[ch[0]]
		m := store.Message{Channel: ch, User: "U1", TS: ts, Origin: store.OriginHistory, Undeletable: store.Undeletable(typ, ch, "U1", "U0ADMIN")}
		if _, err := s.RecordLeak(ctx, m, f, false); err != nil {
			t.Fatal(err)
		}
	}
	rec("C1", "1764580000.000100", cards.ID, strings.Repeat("a", 64)) // to be enforced
	rec("C1", "1764580000.000200", cards.ID, strings.Repeat("b", 64)) // its value allowlisted below
	rec("C1", "1764580000.000300", keys.ID, "")                       // its rule switched to monitor below
	rec("D1", "1764580000.000400", cards.ID, "")                      // another member's DM
	rec("G1", "1764580000.000450", cards.ID, "")                      // another member's group DM
	rec("C1", "1764580000.000500", cards.ID, "")                      // seen live, deletion cancelled below
	ls, _ := s.Leaks(ctx, store.LeakFilter{})
	for _, l := range ls {
		if l.TS == "1764580000.000200" {
			if _, err := s.AllowValue(ctx, l.ID, "test card"); err != nil {
				t.Fatal(err)
			}
		}
	}
	monitor := store.ActionMonitor
	if _, _, err := s.UpdateRegex(ctx, keys.ID, store.RegexUpdate{Action: &monitor}, "admin"); err != nil {
		t.Fatal(err)
	}
	live := []store.Finding{{RegexID: cards.ID, Excerpt: "x", Start: 40, End: 56, Action: store.ActionDelete}}
	if _, err := s.RecordLeak(ctx, store.Message{Channel: "C1", User: "U1", TS: "1764580000.000500"}, live, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelDeletions(ctx, store.Selection{All: true}, "admin", "false positive"); err != nil {
		t.Fatal(err)
	}
	would, err := s.EnforceHistory(ctx, true)
	if err != nil || would != 1 {
		t.Fatalf("dry run = %d, %v; want 1", would, err)
	}
	n, err := s.EnforceHistory(ctx, false)
	if err != nil || n != would {
		t.Fatalf("EnforceHistory = %d, %v; want the dry run's %d", n, err, would)
	}
	pending, _ := s.Leaks(ctx, store.LeakFilter{Status: store.StatusPending})
	if len(pending) != 1 || pending[0].TS != "1764580000.000100" {
		t.Errorf("pending after enforce: %+v", pending)
	}
	cancelled, _ := s.Leaks(ctx, store.LeakFilter{Status: store.StatusCancelled})
	if len(cancelled) != 2 { // the live finding and the history one, attached to the cancelled deletion
		t.Errorf("cancelled after enforce: %d leaks, want 2", len(cancelled))
	}
	if again, _ := s.EnforceHistory(ctx, false); again != 0 {
		t.Errorf("a second enforce queued %d", again)
	}
}
