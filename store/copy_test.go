package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/securechat/securechat/store"
)

// TestCopySQLiteToPostgres copies a database the previous releases wrote
// (upgraded) into PostgreSQL: every rule, leak, pending deletion,
// notification, watermark and allowlisted value arrives, ids are kept, the
// next rule id is past every id used, and a second copy into the same
// target is refused. It runs in the PostgreSQL run.
func TestCopySQLiteToPostgres(t *testing.T) {
	if pgBase == "" {
		t.Skip("needs PostgreSQL (the PostgreSQL run)")
	}
	ctx := context.Background()
	lite, err := store.Open(ctx, copyDB(t, "v10.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	target := newTarget(t)
	pg, err := store.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	counts, err := lite.CopyTo(ctx, pg)
	if err != nil {
		t.Fatalf("copy: %v\n%+v", err, counts)
	}
	byTable := map[string]int64{}
	for _, c := range counts {
		byTable[c.Table] = c.Target
	}
	if byTable["regexes"] != 3 || byTable["leaks"] != 5 || byTable["deletions"] != 3 || byTable["outbox"] != 4 || byTable["allowed_values"] != 1 {
		t.Errorf("copied %v", byTable)
	}
	rs, err := pg.Regexes(ctx)
	if err != nil || len(rs) != 3 || rs[1].Source != "gitleaks:aws-access-token" || rs[1].Action != store.ActionMonitor || len(rs[1].Allowlists) != 1 {
		t.Fatalf("regexes on PostgreSQL = %+v, %v", rs, err)
	}
	ls, err := pg.Leaks(ctx, store.LeakFilter{})
	if err != nil || len(ls) != 5 {
		t.Fatalf("leaks = %d, %v", len(ls), err)
	}
	if wm, err := pg.Watermarks(ctx); err != nil || len(wm) != 2 {
		t.Errorf("watermarks = %v, %v", wm, err)
	}
	if p, err := pg.Presence(ctx); err != nil || p.LastConnected.IsZero() || !p.Clean {
		t.Errorf("presence = %+v, %v", p, err)
	}
	due, err := pg.DueDeletions(ctx, time.Now().AddDate(1, 0, 0), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due deletions = %+v, %v", due, err)
	}
	if _, claimed, err := pg.ClaimDeletion(ctx, due[0].ID, time.Now().AddDate(1, 0, 0), time.Minute); err != nil || !claimed {
		t.Errorf("claim of the copied pending deletion = %v, %v", claimed, err)
	}
	r, err := pg.AddRegex(ctx, `later_[0-9]{6}`, "later")
	if err != nil || r.ID != 4 {
		t.Errorf("next rule on PostgreSQL = %+v, %v; want id 4", r, err)
	}
	if _, err := lite.CopyTo(ctx, pg); !errors.Is(err, store.ErrNotEmpty) {
		t.Errorf("a second copy = %v, want ErrNotEmpty", err)
	}
}
