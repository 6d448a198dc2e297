package store_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

// copyDB copies a testdata database to a temp file, so the test can change it.
func copyDB(t *testing.T, name string) string {
	t.Helper()
	src, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), name)
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUpgradeFromPreviousRelease opens testdata/v3.db, written by the
// previous release (schema 3: three rules, a deleted, a pending and a failed
// deletion, a monitored leak, four pending notifications, an allowlisted
// value), and checks that the upgrade keeps every one of them.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	path := copyDB(t, "v3.db")

	// Read-only commands must not upgrade, and say what to do.
	if _, err := store.OpenReadOnly(ctx, path); !errors.Is(err, store.ErrOldSchema) {
		t.Fatalf("OpenReadOnly on schema 3 = %v, want ErrOldSchema", err)
	}
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()

	rs, err := st.Regexes(ctx)
	if err != nil || len(rs) != 3 {
		t.Fatalf("regexes = %d, %v; want 3", len(rs), err)
	}
	if rs[1].Action != store.ActionMonitor || rs[1].Source != "builtin:aws-access-key-id" || rs[2].Enabled ||
		rs[2].SecretGroup != 1 || len(rs[2].Stopwords) != 1 {
		t.Errorf("a rule's fields were not kept: %+v", rs)
	}
	ls, err := st.Leaks(ctx, store.LeakFilter{})
	if err != nil || len(ls) != 5 {
		t.Fatalf("leaks = %d, %v; want 5", len(ls), err)
	}
	statuses := map[string]int{}
	for _, l := range ls {
		statuses[l.Status]++
	}
	if statuses[store.StatusDeleted] != 1 || statuses[store.StatusPending] != 2 || statuses[store.StatusFailed] != 1 || statuses[store.LeakMonitored] != 1 {
		t.Errorf("deletion states after the upgrade: %v", statuses)
	}
	counts, err := st.DeletionCounts(ctx)
	if err != nil || counts[store.StatusPending] != 1 || counts[store.StatusDeleted] != 1 || counts[store.StatusFailed] != 1 {
		t.Errorf("deletions = %v, %v", counts, err)
	}
	oc, err := st.OutboxCounts(ctx)
	if err != nil || oc[store.KindAlert][store.OutboxPending] != 3 || oc[store.KindWebhook][store.OutboxPending] != 1 {
		t.Errorf("outbox = %v, %v", oc, err)
	}
	av, err := st.AllowedValues(ctx)
	if err != nil || len(av) != 1 {
		t.Errorf("allowlist = %v, %v", av, err)
	}
	// Excerpts stored under the old masking policy (4+4) are re-masked once.
	n, err := st.RemaskExcerpts(ctx, detect.Remask)
	if err != nil || n != 6 {
		t.Errorf("RemaskExcerpts changed %d excerpts, %v; want 6 (5 leaks, 1 allowlisted value)", n, err)
	}
	ls, _ = st.Leaks(ctx, store.LeakFilter{})
	for _, l := range ls {
		if strings.Count(l.Excerpt, "*") < len(l.Excerpt)-4 && !strings.Contains(l.Excerpt, "…") {
			t.Errorf("excerpt %q still shows too much", l.Excerpt)
		}
	}
	if n, err := st.RemaskExcerpts(ctx, detect.Remask); err != nil || n != 0 {
		t.Errorf("a second RemaskExcerpts changed %d, %v", n, err)
	}
	// The pending deletion is still due, and can be carried out.
	due, err := st.DueDeletions(ctx, ls[0].DetectedAt.AddDate(1, 0, 0), 10)
	if err != nil || len(due) != 1 || due[0].Channel != "C0DEVOPS001" {
		t.Fatalf("due deletions = %+v, %v", due, err)
	}
	if err := st.MarkDeleted(ctx, due[0].ID); err != nil {
		t.Fatalf("MarkDeleted after the upgrade: %v", err)
	}
	st.Close()

	// Now stamped as securechat's and current: read-only opens work.
	ro, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly after the upgrade: %v", err)
	}
	defer ro.Close()
	if rs, err := ro.Regexes(ctx); err != nil || len(rs) != 3 {
		t.Errorf("read-only regexes = %d, %v", len(rs), err)
	}
}

func TestOpenRefusesOtherDatabases(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	dir := t.TempDir()
	raw := func(t *testing.T, name string, stmts ...string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		db, err := sql.Open("sqlite3", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range stmts {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		return path
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		{"another application's tables", raw(t, "app.db", `CREATE TABLE invoices (id INTEGER)`), store.ErrForeign},
		{"another application's id", raw(t, "id.db", `PRAGMA application_id = 1234`), store.ErrForeign},
		{"another application's empty database", raw(t, "empty.db", `PRAGMA user_version = 3`), store.ErrForeign},
		{"a newer securechat", raw(t, "newer.db", "PRAGMA application_id = "+strconv.Itoa(store.ApplicationID), `CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER)`,
			`INSERT INTO meta VALUES ('rules_generation', 1)`, `PRAGMA user_version = 999`), store.ErrNewer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := os.ReadFile(tt.path)
			if _, err := store.Open(ctx, tt.path); !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
			if _, err := store.OpenReadOnly(ctx, tt.path); !errors.Is(err, tt.want) {
				t.Errorf("OpenReadOnly = %v, want %v", err, tt.want)
			}
			after, _ := os.ReadFile(tt.path)
			if string(before) != string(after) {
				t.Error("the file was changed")
			}
		})
	}
}

func TestOpenReadOnlyOnAReadOnlyFile(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	s, path := openTemp(t)
	if _, err := s.AddRegex(ctx, "abc+", "x"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Dir(path), 0o700); os.Chmod(path, 0o600) })
	ro, err := store.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	defer ro.Close()
	if rs, err := ro.Regexes(ctx); err != nil || len(rs) != 1 {
		t.Fatalf("Regexes = %v, %v", rs, err)
	}
	if _, err := store.OpenReadOnly(ctx, filepath.Join(dir(path), "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly(missing) = %v, want ErrNotExist", err)
	}
}

func dir(p string) string { return filepath.Dir(p) }

// TestUpgradeFromSchema7 opens testdata/v7.db, written by the release before
// the catch-up (schema 7: three rules, one imported from gitleaks with an
// allowlist and one disabled; deletions deleted, pending, failed, cancelled
// and held; a monitored leak; seven pending notifications; an allowlisted
// value; breaker scan counts), and checks that migration 0008 keeps every
// one of them and starts the catch-up with no watermark and no connection
// recorded, and that migration 0009 marks every leak as found live.
func TestUpgradeFromSchema7(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	path := copyDB(t, "v7.db")
	if _, err := store.OpenReadOnly(ctx, path); !errors.Is(err, store.ErrOldSchema) {
		t.Fatalf("OpenReadOnly on schema 7 = %v, want ErrOldSchema", err)
	}
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	rs, err := st.Regexes(ctx)
	if err != nil || len(rs) != 3 {
		t.Fatalf("regexes = %d, %v; want 3", len(rs), err)
	}
	if rs[1].Source != "gitleaks:aws-access-token" || rs[1].Action != store.ActionMonitor || len(rs[1].Allowlists) != 1 ||
		rs[1].SecretGroup != detect.FirstGroup || rs[2].Enabled {
		t.Errorf("a rule's fields were not kept: %+v", rs)
	}
	ls, err := st.Leaks(ctx, store.LeakFilter{})
	if err != nil || len(ls) != 6 {
		t.Fatalf("leaks = %d, %v; want 6", len(ls), err)
	}
	for _, l := range ls {
		if l.Origin != store.OriginLive {
			t.Errorf("leak %d: origin %q after the upgrade, want live", l.ID, l.Origin)
		}
	}
	counts, err := st.DeletionCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{store.StatusDeleted, store.StatusPending, store.StatusFailed, store.StatusCancelled, store.StatusHeld} {
		if counts[s] != 1 {
			t.Errorf("deletions %s = %d, want 1 (all: %v)", s, counts[s], counts)
		}
	}
	oc, err := st.OutboxCounts(ctx)
	if err != nil || oc[store.KindAlert][store.OutboxPending] != 6 || oc[store.KindWebhook][store.OutboxPending] != 1 {
		t.Errorf("outbox = %v, %v", oc, err)
	}
	if av, err := st.AllowedValues(ctx); err != nil || len(av) != 1 {
		t.Errorf("allowlist = %v, %v", av, err)
	}
	if l, err := st.RuleLoad(ctx, rs[0].ID, time.Unix(0, 0)); err != nil || l.Scanned != 42 {
		t.Errorf("scan counts = %+v, %v", l, err)
	}
	p, err := st.Presence(ctx)
	if err != nil || !p.LastConnected.IsZero() {
		t.Errorf("presence after the upgrade = %+v, %v; want none", p, err)
	}
	if wm, err := st.Watermarks(ctx); err != nil || len(wm) != 0 {
		t.Errorf("watermarks = %v, %v", wm, err)
	}
	// The new tables work.
	now := time.Now()
	if err := st.SaveProgress(ctx, map[string]string{"C0DEVOPS001": "1764061200.000300"}, now, true); err != nil {
		t.Fatal(err)
	}
	if err := st.SetNames(ctx, store.NameConversation, map[string]string{"C0DEVOPS001": "devops"}); err != nil {
		t.Fatal(err)
	}
	if id, err := st.IDByName(ctx, store.NameConversation, "devops"); err != nil || id != "C0DEVOPS001" {
		t.Errorf("IDByName = %q, %v", id, err)
	}
	// The pending deletion is still due.
	due, err := st.DueDeletions(ctx, now.AddDate(1, 0, 0), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due deletions = %+v, %v", due, err)
	}
}

// TestUpgradeFromSchema10 opens testdata/v10.db, written by the release
// before migration 0011 (schema 10: three rules, the third of which took
// the id of a removed rule whose history finding is still recorded; a
// held, a pending and a deleted deletion; a monitored leak with its value
// allowlisted; three pending notifications; watermarks; a sweep), and
// checks that the upgrade keeps every one of them, that the finding of the
// removed rule no longer counts for the rule that took its id, and that no
// id is given twice after it.
func TestUpgradeFromSchema10(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	path := copyDB(t, "v10.db")
	if _, err := store.OpenReadOnly(ctx, path); !errors.Is(err, store.ErrOldSchema) {
		t.Fatalf("OpenReadOnly on schema 10 = %v, want ErrOldSchema", err)
	}
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	rs, err := st.Regexes(ctx)
	if err != nil || len(rs) != 3 {
		t.Fatalf("regexes = %d, %v; want 3", len(rs), err)
	}
	for i, want := range []string{`6759[0-9]{12}`, `(AKIA[0-9A-Z]{16})`, `new_[0-9]{8}`} {
		if rs[i].ID != int64(i+1) || rs[i].Pattern != want {
			t.Errorf("rule %d = %d %q, want %d %q", i, rs[i].ID, rs[i].Pattern, i+1, want)
		}
	}
	if rs[1].Source != "gitleaks:aws-access-token" || rs[1].Action != store.ActionMonitor || len(rs[1].Allowlists) != 1 {
		t.Errorf("the gitleaks rule's fields were not kept: %+v", rs[1])
	}
	ls, err := st.Leaks(ctx, store.LeakFilter{})
	if err != nil || len(ls) != 5 {
		t.Fatalf("leaks = %d, %v; want 5", len(ls), err)
	}
	statuses := map[string]int{}
	for _, l := range ls {
		statuses[l.Status]++
	}
	if want := map[string]int{"held": 1, "pending": 1, "deleted": 1, "monitored": 1, "found": 1}; !maps.Equal(statuses, want) {
		t.Errorf("leak statuses = %v, want %v", statuses, want)
	}
	counts, err := st.DeletionCounts(ctx)
	if err != nil || counts[store.StatusHeld] != 1 || counts[store.StatusPending] != 1 || counts[store.StatusDeleted] != 1 {
		t.Errorf("deletions = %v, %v", counts, err)
	}
	oc, err := st.OutboxCounts(ctx)
	if err != nil || oc[store.KindAlert][store.OutboxPending] != 2 || oc[store.KindWebhook][store.OutboxPending] != 1 || oc[store.KindAuthor][store.OutboxPending] != 1 {
		t.Errorf("outbox = %v, %v", oc, err)
	}
	if av, err := st.AllowedValues(ctx); err != nil || len(av) != 1 {
		t.Errorf("allowlist = %v, %v", av, err)
	}
	if wm, err := st.Watermarks(ctx); err != nil || len(wm) != 2 {
		t.Errorf("watermarks = %v, %v", wm, err)
	}
	if p, err := st.Presence(ctx); err != nil || p.LastConnected.IsZero() || !p.Clean {
		t.Errorf("presence = %+v, %v", p, err)
	}
	// The history finding of the removed rule 3 is not the new rule 3's:
	// 'scan --enforce' queues nothing for it.
	if n, err := st.EnforceHistory(ctx, true); err != nil || n != 0 {
		t.Errorf("scan --enforce would queue %d deletion(s), %v; want 0", n, err)
	}
	// The pending deletion is still claimed (its rule is unchanged).
	due, err := st.DueDeletions(ctx, time.Now().AddDate(1, 0, 0), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due deletions = %+v, %v", due, err)
	}
	if _, claimed, err := st.ClaimDeletion(ctx, due[0].ID, time.Now().AddDate(1, 0, 0), time.Minute); err != nil || !claimed {
		t.Errorf("claim of the pending deletion = %v, %v", claimed, err)
	}
	// Ids are never given twice, not even the newest one's after it is removed.
	r4, err := st.AddRegex(ctx, `later_[0-9]{6}`, "later")
	if err != nil || r4.ID != 4 {
		t.Fatalf("next rule = %+v, %v; want id 4", r4, err)
	}
	if _, err := st.DeleteRegex(ctx, r4.ID, "test"); err != nil {
		t.Fatal(err)
	}
	r5, err := st.AddRegex(ctx, `again_[0-9]{6}`, "again")
	if err != nil || r5.ID != 5 {
		t.Errorf("rule after removing rule 4 = %+v, %v; want id 5", r5, err)
	}
	// The catch-up windows work.
	if _, err := st.OpenCatchupWindow(ctx, store.CatchupWindow{Since: time.Now(), FloorTS: "1.000000", Why: "start",
		Progress: map[string]store.CatchupProgress{"C0GENERAL01": {Oldest: "1763629200.000200"}}}); err != nil {
		t.Fatal(err)
	}
	if ws, err := st.CatchupWindows(ctx); err != nil || len(ws) != 1 || ws[0].Progress["C0GENERAL01"].Oldest != "1763629200.000200" {
		t.Errorf("catch-up windows = %+v, %v", ws, err)
	}
}

// TestUpgradeFromSchema11 opens testdata/v11.db, written by the release
// before migration 0012 (schema 11: a rule on trial; a pending deletion,
// one claimed with its outcome unknown, a deleted one; an allowlisted
// value; a notification claimed and two pending; watermarks and a clean
// stop; an open catch-up window), and checks that the upgrade keeps every
// one of them and that the new per-replica and claim-token parts work on
// what was there: the old clean stop is the database's presence, and the
// deletion and notification claimed before the upgrade are claimed again
// once their lease has passed, with fenced outcomes.
func TestUpgradeFromSchema11(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	path := copyDB(t, "v11.db")
	st, err := store.Open(ctx, path, store.WithInstance("new-daemon"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	rs, err := st.Regexes(ctx)
	if err != nil || len(rs) != 2 || rs[1].TrialUntil == nil || rs[1].Action != store.ActionMonitor {
		t.Fatalf("regexes = %+v, %v", rs, err)
	}
	ls, err := st.Leaks(ctx, store.LeakFilter{})
	if err != nil || len(ls) != 4 {
		t.Fatalf("leaks = %d, %v; want 4", len(ls), err)
	}
	counts, _ := st.DeletionCounts(ctx)
	if counts[store.StatusPending] != 2 || counts[store.StatusDeleted] != 1 {
		t.Errorf("deletions = %v", counts)
	}
	oc, _ := st.OutboxCounts(ctx)
	if oc[store.KindAlert][store.OutboxPending] != 1 || oc[store.KindWebhook][store.OutboxPending] != 1 || oc[store.KindAuthor][store.OutboxPending] != 1 {
		t.Errorf("outbox = %v", oc)
	}
	if av, _ := st.AllowedValues(ctx); len(av) != 1 {
		t.Errorf("allowlist = %v", av)
	}
	if wm, _ := st.Watermarks(ctx); len(wm) != 2 || wm["C0DEVOPS001"] != "1764579600.000400" {
		t.Errorf("watermarks = %v", wm)
	}
	want := time.UnixMilli(1796115840000).UTC()
	if p, err := st.Presence(ctx); err != nil || !p.LastConnected.Equal(want) || !p.Clean {
		t.Errorf("presence = %+v, %v; want the last run's clean stop at %v", p, err, want)
	}
	if p, _ := st.OthersPresence(ctx); !p.LastConnected.Equal(want) {
		t.Errorf("the last run is another daemon for the new one: %+v", p)
	}
	if ws, err := st.CatchupWindows(ctx); err != nil || len(ws) != 1 || ws[0].Progress["C0DEVOPS001"].Latest != "1764578000.000000" {
		t.Errorf("catch-up windows = %+v, %v", ws, err)
	}
	// Both pending deletions are claimed once the old lease has passed:
	// the one in flight at the upgrade knows an earlier attempt was made.
	later := time.Now().AddDate(1, 0, 0)
	due, _ := st.DueDeletions(ctx, later, 10)
	ids := []int64{}
	for _, d := range due {
		ids = append(ids, d.ID)
	}
	claims, err := st.ClaimDeletions(ctx, ids, later, time.Minute)
	if err != nil || len(claims) != 2 || claims[1].Attempts != 1 || claims[1].Token == "" {
		t.Fatalf("claims = %+v, %v", claims, err)
	}
	errs, err := st.RecordOutcomes(ctx, []store.Outcome{{ID: claims[1].ID, Token: claims[1].Token, Status: store.StatusDeleted}})
	if err != nil || errs[0] != nil {
		t.Errorf("outcome = %v, %v", errs, err)
	}
	items, _ := st.DueOutbox(ctx, later, 10)
	if len(items) != 3 {
		t.Fatalf("due notifications = %d, want 3", len(items))
	}
	token, err := st.ClaimOutbox(ctx, items[0].ID, later, time.Minute)
	if err != nil || token == "" {
		t.Fatalf("claim of the notification in flight at the upgrade = %q, %v", token, err)
	}
	if err := st.FinishOutbox(ctx, items[0].ID, token, store.OutboxSent, "", later); err != nil {
		t.Error(err)
	}
	if r, err := st.AddRegex(ctx, `later_[0-9]{6}`, "later"); err != nil || r.ID != 3 {
		t.Errorf("next rule = %+v, %v; want id 3", r, err)
	}
}

// TestUpgradeFromSchema12 opens testdata/v12.db, written by the release
// before migration 0013 (two rules, one in monitor; three leaks, one
// deletion done and one pending; an allowlisted value; three alerts and an
// author notice pending; a stopped daemon), and checks that the upgrade
// keeps every one of them and that reports and the audit log work on what
// was there.
func TestUpgradeFromSchema12(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	st, err := store.Open(ctx, copyDB(t, "v12.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	rs, err := st.Regexes(ctx)
	if err != nil || len(rs) != 2 || rs[1].Action != store.ActionMonitor {
		t.Fatalf("regexes = %+v, %v", rs, err)
	}
	ls, err := st.Leaks(ctx, store.LeakFilter{})
	if err != nil || len(ls) != 3 {
		t.Fatalf("leaks = %d, %v; want 3", len(ls), err)
	}
	for _, l := range ls {
		if l.Report != "" {
			t.Errorf("leak %d has report %q before anyone reported", l.ID, l.Report)
		}
	}
	if c, _ := st.DeletionCounts(ctx); c[store.StatusPending] != 1 || c[store.StatusDeleted] != 1 {
		t.Errorf("deletions = %v", c)
	}
	if oc, _ := st.OutboxCounts(ctx); oc[store.KindAlert][store.OutboxPending] != 3 || oc[store.KindAuthor][store.OutboxPending] != 1 {
		t.Errorf("outbox = %v", oc)
	}
	if av, _ := st.AllowedValues(ctx); len(av) != 1 {
		t.Errorf("allowlist = %v", av)
	}
	res, err := st.Report(ctx, store.ReportInput{Channel: "C0DEVOPS001", TS: "1796115000.000100", User: "U0ALICE", Kind: store.ReportNotSecret}, nil, store.Noise{})
	if err != nil || res.Recorded != 1 {
		t.Fatalf("report on an upgraded leak = %+v, %v", res, err)
	}
	if _, err := st.PauseRule(ctx, rs[0].ID, "os:alice"); err != nil {
		t.Fatal(err)
	}
	if log, _ := st.AuditLog(ctx, "", 0); len(log) != 1 || log[0].Actor != "os:alice" {
		t.Errorf("audit = %+v", log)
	}
	if n, _ := st.Noise(ctx); n[rs[0].ID].Leaks != 2 || n[rs[0].ID].NotSecret != 1 {
		t.Errorf("noise = %+v", n)
	}
}
