package store_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/securechat/securechat/store"
)

// The concurrency cases of the conformance suite: what several daemons on
// one database (replicas) rely on. Each runs on SQLite and on PostgreSQL.

// queueN queues n deletions of rule r's findings and returns their ids.
func queueN(t *testing.T, s *store.Store, r store.Regex, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range n {
		res, err := s.RecordLeak(context.Background(), store.Message{Channel: "C1", TS: "1." + strconv.Itoa(i)},
			[]store.Finding{{RegexID: r.ID, Rule: "r", Excerpt: "****", Action: store.ActionDelete}}, true)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.DeletionID
	}
	return ids
}

// TestTwoClaimersTakeEachDeletionOnce: two daemons claiming the same due
// deletions at once claim each exactly once.
func TestTwoClaimersTakeEachDeletionOnce(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	r, _ := a.AddRegex(ctx, `tok_[a-z]{10}`, "tokens")
	ids := queueN(t, a, r, 120)
	now := time.Now().Add(time.Second)
	var mu sync.Mutex
	claims := map[int64]int{}
	var wg sync.WaitGroup
	for _, s := range []*store.Store{a, b, a, b} {
		wg.Go(func() {
			for i := 0; i < len(ids); i += 10 {
				got, err := s.ClaimDeletions(ctx, ids[i:i+10], now, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, c := range got {
					claims[c.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if claims[id] != 1 {
			t.Errorf("deletion %d claimed %d times, want once", id, claims[id])
		}
	}
}

// TestALostAnswerIsFenced: a daemon paused past its lease loses its claim;
// the next claim's attempt knows an earlier one was made, and only its
// outcome is recorded.
func TestALostAnswerIsFenced(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	r, _ := a.AddRegex(ctx, `tok_[a-z]{10}`, "tokens")
	id := queueN(t, a, r, 1)[0]
	now := time.Now().Add(time.Second)
	first, ok, err := a.ClaimDeletion(ctx, id, now, time.Minute)
	if err != nil || !ok {
		t.Fatalf("first claim = %v, %v", ok, err)
	}
	if _, ok, _ := b.ClaimDeletion(ctx, id, now.Add(30*time.Second), time.Minute); ok {
		t.Fatal("claimed during another daemon's lease")
	}
	second, ok, err := b.ClaimDeletion(ctx, id, now.Add(2*time.Minute), time.Minute)
	if err != nil || !ok || second.Attempts != 1 {
		t.Fatalf("claim after the lease = %+v, %v, %v; want one earlier attempt", second, ok, err)
	}
	// The paused daemon wakes and records its attempt's failure: refused.
	errs, err := a.RecordOutcomes(ctx, []store.Outcome{{ID: id, Token: first.Token, Status: store.StatusFailed, Reason: "500"}})
	if err != nil || !errors.Is(errs[0], store.ErrClaimLost) {
		t.Fatalf("the overtaken claim's outcome = %v, %v; want ErrClaimLost", errs, err)
	}
	errs, err = b.RecordOutcomes(ctx, []store.Outcome{{ID: id, Token: second.Token, Status: store.StatusDeleted}})
	if err != nil || errs[0] != nil {
		t.Fatalf("the current claim's outcome = %v, %v", errs, err)
	}
	if d, _ := a.Deletion(ctx, id); d.Status != store.StatusDeleted || d.Attempts != 2 {
		t.Errorf("deletion = %+v, want deleted after 2 attempts", d)
	}
}

// TestACancelledClaim: an admin cancels a deletion while its call is in
// flight; a failed or retried attempt leaves it cancelled, and an attempt
// that did delete is recorded as deleted.
func TestACancelledClaim(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	r, _ := a.AddRegex(ctx, `tok_[a-z]{10}`, "tokens")
	ids := queueN(t, a, r, 2)
	now := time.Now().Add(time.Second)
	claims, err := a.ClaimDeletions(ctx, ids, now, time.Minute)
	if err != nil || len(claims) != 2 {
		t.Fatalf("claims = %v, %v", claims, err)
	}
	if n, err := b.CancelDeletions(ctx, store.Selection{All: true}, "alice", "false positive"); err != nil || n != 2 {
		t.Fatalf("cancel = %d, %v", n, err)
	}
	errs, err := a.RecordOutcomes(ctx, []store.Outcome{
		{ID: ids[0], Token: claims[0].Token, Status: store.StatusPending, Reason: "500", Next: now.Add(time.Minute)},
		{ID: ids[1], Token: claims[1].Token, Status: store.StatusDeleted},
	})
	if err != nil || !errors.Is(errs[0], store.ErrNotFound) || errs[1] != nil {
		t.Fatalf("outcomes = %v, %v", errs, err)
	}
	for i, want := range []string{store.StatusCancelled, store.StatusDeleted} {
		if d, _ := b.Deletion(ctx, ids[i]); d.Status != want {
			t.Errorf("deletion %d is %s, want %s", i, d.Status, want)
		}
	}
}

// TestATrialEndsOnce: daemons ending trials at once end each trial once,
// with one alert.
func TestATrialEndsOnce(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	until := time.Now().Add(-time.Minute)
	r, err := a.AddRule(ctx, store.Regex{Pattern: `tok_[a-z]{10}`, Enabled: true, Action: store.ActionMonitor, TrialUntil: &until})
	if err != nil {
		t.Fatal(err)
	}
	note := func(store.Regex) []store.OutboxItem {
		return []store.OutboxItem{{Kind: store.KindAlert, Payload: `{"text":"trial ended"}`}}
	}
	var mu sync.Mutex
	ended := 0
	var wg sync.WaitGroup
	for _, s := range []*store.Store{a, b, a, b} {
		wg.Go(func() {
			got, err := s.EndTrials(ctx, time.Now(), note)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			ended += len(got)
			mu.Unlock()
		})
	}
	wg.Wait()
	if ended != 1 {
		t.Errorf("the trial was ended %d times, want once", ended)
	}
	if got, _ := a.Regex(ctx, r.ID); got.Action != store.ActionDelete || got.TrialUntil != nil {
		t.Errorf("after the trial: %+v", got)
	}
	if c, _ := a.OutboxCounts(ctx); c[store.KindAlert][store.OutboxPending] != 1 {
		t.Errorf("alerts = %v, want one", c)
	}
}

// TestTheDatabaseClockDecidesLeases: on PostgreSQL a claim's due check and
// lease use the database's clock, so a replica whose clock runs an hour
// ahead cannot take a deletion still under another's lease. SQLite (one
// machine) uses the clock it is given.
func TestTheDatabaseClockDecidesLeases(t *testing.T) {
	ctx := context.Background()
	target := newTarget(t)
	s, err := store.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, _ := s.AddRegex(ctx, `tok_[a-z]{10}`, "tokens")
	id := queueN(t, s, r, 1)[0]
	if _, ok, err := s.ClaimDeletion(ctx, id, time.Now(), 10*time.Minute); err != nil || !ok {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	ahead := time.Now().Add(time.Hour)
	_, ok, err := s.ClaimDeletion(ctx, id, ahead, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if store.IsPostgres(target) && ok {
		t.Error("a clock an hour ahead took a deletion under a 10-minute lease")
	}
	if !store.IsPostgres(target) && !ok {
		t.Error("SQLite did not use the clock it was given")
	}
}

// TestOneLeaderAtATime: of replicas asking for the leader lease at once,
// one holds it; it renews it; once it lapses another takes it over, and a
// release hands it over at once.
func TestOneLeaderAtATime(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	var mu sync.Mutex
	holders := map[string]bool{}
	var wg sync.WaitGroup
	for i, s := range []*store.Store{a, b, a, b} {
		wg.Go(func() {
			me := "replica-" + strconv.Itoa(i)
			held, err := s.AcquireLease(ctx, "leader", me, "", time.Minute)
			if err != nil {
				t.Error(err)
			}
			if held {
				mu.Lock()
				holders[me] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(holders) != 1 {
		t.Fatalf("holders = %v, want exactly one", holders)
	}
	var leader string
	for h := range holders {
		leader = h
	}
	if held, _ := a.AcquireLease(ctx, "leader", leader, "", time.Minute); !held {
		t.Error("the leader could not renew its lease")
	}
	if held, _ := b.AcquireLease(ctx, "leader", "newcomer", "someone-else", time.Minute); held {
		t.Error("a lease that has not lapsed was taken over")
	}
	if h, _ := b.LeaseHolder(ctx, "leader"); h != leader {
		t.Errorf("holder = %q, want %q", h, leader)
	}
	// A holder known to be gone (its process ended on this host) is
	// replaced at once, and then holds no more.
	if held, _ := b.AcquireLease(ctx, "leader", "successor", leader, time.Minute); !held {
		t.Error("the lease of a holder known to be gone was not taken over")
	}
	if held, _ := a.AcquireLease(ctx, "leader", leader, "", time.Minute); held {
		t.Error("the replaced holder still holds the lease")
	}
	leader = "successor"
	if err := a.ReleaseLease(ctx, "leader", leader); err != nil {
		t.Fatal(err)
	}
	if held, _ := b.AcquireLease(ctx, "leader", "newcomer", "", 50*time.Millisecond); !held {
		t.Error("a released lease was not taken over")
	}
	time.Sleep(100 * time.Millisecond) // the lease's own expiry, not a wait for something to happen
	if held, _ := a.AcquireLease(ctx, "leader", "third", "", time.Minute); !held {
		t.Error("a lapsed lease was not taken over")
	}
}

// TestEachReplicaKeepsItsOwnPresence: two daemons save their connection
// times under their own names; the newest is the database's presence, with
// its clean flag.
func TestEachReplicaKeepsItsOwnPresence(t *testing.T) {
	ctx := context.Background()
	target := newTarget(t)
	open := func(id string) *store.Store {
		s, err := store.Open(ctx, target, store.WithInstance(id))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	if err := a.SaveProgress(ctx, nil, t0.Add(time.Minute), false); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveProgress(ctx, nil, t0, true); err != nil {
		t.Fatal(err)
	}
	p, err := b.Presence(ctx)
	if err != nil || !p.LastConnected.Equal(t0.Add(time.Minute)) || p.Clean {
		t.Fatalf("presence = %+v, %v; want a's (b's older clean stop must not overwrite it)", p, err)
	}
	if err := b.Beat(ctx, "host-b", 42, 2); err != nil {
		t.Fatal(err)
	}
	ins, err := a.Instances(ctx)
	byID := map[string]store.Instance{}
	for _, in := range ins {
		byID[in.ID] = in
	}
	if err != nil || len(ins) != 2 || byID["b"].Connections != 2 || byID["b"].Host != "host-b" || !byID["a"].LastConnected.Equal(t0.Add(time.Minute)) {
		t.Errorf("instances = %+v, %v", ins, err)
	}
}

// TestWatchHints: on PostgreSQL a rule added and a deletion queued by
// another process are hinted to a watcher; SQLite's Watch returns at once
// (its daemons poll).
func TestWatchHints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := openTwo(t)
	hints := make(chan string, 16)
	done := make(chan error, 1)
	go func() { done <- a.Watch(ctx, func(h string) { hints <- h }) }()
	if pgBase == "" {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Watch on SQLite did not return")
		}
		return
	}
	want := func(h string) {
		t.Helper()
		for {
			select {
			case got := <-hints:
				if got == h {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s hint", h)
			}
		}
	}
	// Until the LISTEN is in place a change may go unhinted: add rules
	// until one is.
	r, _ := b.AddRegex(ctx, `tok_[a-z]{10}`, "tokens")
	for i := 0; ; i++ {
		select {
		case h := <-hints:
			if h != store.HintRules {
				continue
			}
		case <-time.After(100 * time.Millisecond):
			if _, err := b.AddRegex(ctx, `tok`+strconv.Itoa(i)+`_[a-z]{10}`, ""); err != nil {
				t.Fatal(err)
			}
			continue
		}
		break
	}
	queueN(t, b, r, 1)
	want(store.HintWork)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestGoneDaemonsAreForgotten: a heartbeat forgets the rows of daemons gone
// for a week, but never the one holding the newest connection time.
func TestGoneDaemonsAreForgotten(t *testing.T) {
	ctx := context.Background()
	target := newTarget(t)
	clock := time.Now().Add(-30 * 24 * time.Hour)
	open := func(id string) *store.Store {
		s, err := store.Open(ctx, target, store.WithInstance(id), store.WithClock(func() time.Time { return clock }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	old, newest, now := open("old"), open("newest"), open("now")
	if err := old.SaveProgress(ctx, nil, clock, false); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Hour)
	if err := newest.SaveProgress(ctx, nil, clock, true); err != nil {
		t.Fatal(err)
	}
	clock = time.Now()
	if err := now.Beat(ctx, "h", 1, 0); err != nil {
		t.Fatal(err)
	}
	ins, _ := now.Instances(ctx)
	ids := map[string]bool{}
	for _, in := range ins {
		ids[in.ID] = true
	}
	if ids["old"] || !ids["newest"] || !ids["now"] {
		t.Errorf("instances after a heartbeat: %v; want old forgotten, newest and now kept", ids)
	}
	if p, _ := now.Presence(ctx); !p.Clean {
		t.Errorf("presence = %+v, want the newest's clean stop", p)
	}
}

// TestAClaimWhoseAnswerWasLost: when a claim's commit happened but its
// answer did not arrive, the claimer reads back by its token which rows it
// holds, rather than waiting out the lease. (Cutting a connection between
// the commit and its answer is done end to end by
// TestPostgresConnectionsKilled; here the read-back itself is checked.)
func TestAClaimWhoseAnswerWasLost(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	r, _ := s.AddRegex(ctx, `tok_[a-z]{10}`, "tokens")
	ids := queueN(t, s, r, 2)
	now := time.Now().Add(time.Second)
	claims, err := s.ClaimDeletions(ctx, ids, now, time.Minute)
	if err != nil || len(claims) != 2 {
		t.Fatal(claims, err)
	}
	// Recovery reads by token: the claims just made are found, a token
	// that claimed nothing finds none.
	got, ok := store.RecoverDeletionClaimsForTest(s, ctx, ids, claims[0].Token)
	if !ok || len(got) != 2 || got[0].Attempts != 0 || got[1].Token != claims[0].Token {
		t.Errorf("recovered %+v, %v", got, ok)
	}
	if _, ok := store.RecoverDeletionClaimsForTest(s, ctx, ids, "not-a-token"); ok {
		t.Error("a token that claimed nothing recovered claims")
	}
}
