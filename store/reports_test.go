package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securechat/securechat/store"
)

func TestReportsOncePerLeakAndPerson(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	r, _ := s.AddRegex(ctx, "tok_[a-z]+", "tokens")
	if _, err := s.RecordLeak(ctx, store.Message{Channel: "C1", User: "U1", TS: "1.1"},
		[]store.Finding{{RegexID: r.ID, Rule: "tokens", Excerpt: "tok_a***", Start: 0, End: 8, MAC: "m1"},
			{RegexID: r.ID, Rule: "tokens", Excerpt: "tok_b***", Start: 10, End: 18, MAC: "m2"}}, true); err != nil {
		t.Fatal(err)
	}
	alerts := 0
	notes := func(ls []store.Leak) []store.OutboxItem {
		alerts++
		return []store.OutboxItem{{Kind: store.KindAlert, Payload: `{"text":"report"}`}}
	}
	flagged := 0
	noise := store.Noise{Reports: 2, Notes: func(n store.NoisyRule) []store.OutboxItem {
		flagged++
		if n.Reports < 2 || n.RegexID != r.ID {
			t.Errorf("noisy rule = %+v", n)
		}
		return []store.OutboxItem{{Kind: store.KindAlert, Payload: `{"text":"noisy"}`}}
	}}
	in := store.ReportInput{Channel: "C1", TS: "1.1", User: "U1", Kind: store.ReportNotSecret, Reason: "it is a fixture"}
	res, err := s.Report(ctx, in, notes, noise)
	if err != nil || res.Recorded != 2 || len(res.Leaks) != 2 {
		t.Fatalf("first report = %+v, %v; want both leaks recorded", res, err)
	}
	// The second click, even of the other button, records nothing more.
	in.Kind = store.ReportRotated
	res, err = s.Report(ctx, in, notes, noise)
	if err != nil || res.Recorded != 0 || res.Earlier != store.ReportNotSecret {
		t.Fatalf("second report = %+v, %v; want none recorded, earlier not_secret", res, err)
	}
	if alerts != 1 || flagged != 1 {
		t.Errorf("alerts = %d, noisy flags = %d; want 1 and 1 (two reports reach the threshold of 2 once)", alerts, flagged)
	}
	// Someone else cannot report the author's message.
	if _, err := s.Report(ctx, store.ReportInput{Channel: "C1", TS: "1.1", User: "U2", Kind: store.ReportNotSecret}, notes, noise); !errors.Is(err, store.ErrNotAuthor) {
		t.Errorf("report by another member: %v, want ErrNotAuthor", err)
	}
	if _, err := s.Report(ctx, store.ReportInput{Channel: "C1", TS: "9.9", User: "U1", Kind: store.ReportNotSecret}, notes, noise); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("report of an unknown message: %v, want ErrNotFound", err)
	}
	ls, _ := s.Leaks(ctx, store.LeakFilter{Reported: store.ReportOpen})
	if len(ls) != 2 || ls[0].Report != "not_secret open" {
		t.Errorf("reported leaks = %+v", ls)
	}
	n, err := s.Noise(ctx)
	if err != nil || n[r.ID].Leaks != 2 || n[r.ID].NotSecret != 2 || n[r.ID].Share() != 1 {
		t.Errorf("noise = %+v, %v", n, err)
	}
	oc, _ := s.OutboxCounts(ctx)
	if oc[store.KindAlert][store.OutboxPending] != 2 {
		t.Errorf("alerts queued = %v; want the report's and the noisy flag's", oc)
	}
	if n, err := s.OpenReports(ctx); err != nil || n != 2 {
		t.Errorf("open reports = %d, %v; want 2", n, err)
	}
	// Keep deleted closes both reports of the message, once.
	c, err := s.KeepDeleted(ctx, ls[0].ID, "slack:UADMIN")
	if err != nil || !c.Done || c.Closed != 2 {
		t.Fatalf("keep = %+v, %v", c, err)
	}
	if n, _ := s.OpenReports(ctx); n != 0 {
		t.Errorf("open reports after keep = %d", n)
	}
	c, err = s.KeepDeleted(ctx, ls[0].ID, "slack:UOTHER")
	if err != nil || c.Done || c.By != "slack:UADMIN" {
		t.Errorf("second keep = %+v, %v; want nothing done, by the first admin", c, err)
	}
	log, _ := s.AuditLog(ctx, "", 10)
	if len(log) != 2 || log[0].Action != "report.keep" || log[0].Actor != "slack:UADMIN" || log[1].Action != "rule.flag_noisy" {
		t.Errorf("audit = %+v", log)
	}
}

// TestAdminActionsChangeOneThingOnce: two admins pressing the same button
// at once (or one pressing it twice) change one thing once and audit it
// once; the others learn who did it.
func TestAdminActionsChangeOneThingOnce(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	r, _ := s.AddRegex(ctx, "tok_[a-z]+", "tokens")
	leak := queue(t, s, "1.1", store.Finding{RegexID: r.ID, Rule: "tokens", Excerpt: "tok_***", Start: 0, End: 8, MAC: "m1"})
	for _, tc := range []struct {
		name string
		do   func(actor string) (store.Change, error)
	}{
		{"pause", func(a string) (store.Change, error) { return s.PauseRule(ctx, r.ID, a) }},
		{"allow", func(a string) (store.Change, error) { _, c, err := s.AllowLeak(ctx, leak, "", a); return c, err }},
		{"resume", func(a string) (store.Change, error) { return s.ResumeRule(ctx, r.ID, a) }},
	} {
		var wg sync.WaitGroup
		changes := make([]store.Change, 4)
		errs := make([]error, 4)
		for i := range changes {
			wg.Go(func() { changes[i], errs[i] = tc.do("slack:U" + string(rune('A'+i))) })
		}
		wg.Wait()
		done, by := 0, ""
		for i, c := range changes {
			if errs[i] != nil {
				t.Fatalf("%s: %v", tc.name, errs[i])
			}
			if c.Done {
				done++
				by = "slack:U" + string(rune('A'+i))
			}
		}
		if done != 1 {
			t.Fatalf("%s: %d of 4 concurrent presses changed something; want 1", tc.name, done)
		}
		for _, c := range changes {
			if !c.Done && c.By != by {
				t.Errorf("%s: a press that changed nothing says it was done by %q, want %q", tc.name, c.By, by)
			}
		}
	}
	rr, _ := s.Regex(ctx, r.ID)
	if rr.Action != store.ActionDelete {
		t.Errorf("rule = %s after pause then resume", rr.Action)
	}
	if av, _ := s.AllowedValues(ctx); len(av) != 1 {
		t.Errorf("allowlist = %+v", av)
	}
	log, _ := s.AuditLog(ctx, "", 10)
	if len(log) != 3 {
		t.Errorf("audit entries = %+v; want one per change", log)
	}
	if _, err := s.PauseRule(ctx, 999, "os:alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pause of a removed rule: %v, want ErrNotFound", err)
	}
}

// TestPauseEndsATrial: pausing a rule in trial (monitor until a date, then
// delete) keeps it in monitor for good, as 'regex update --action monitor'
// always did; pausing a rule the breaker tripped makes it a person's pause.
func TestPauseEndsATrial(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	until := time.Now().Add(time.Hour)
	r, err := s.AddRule(ctx, store.Regex{Pattern: "tok_[a-z]+", Description: "t", Enabled: true, Action: store.ActionMonitor, TrialUntil: &until})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.PauseRule(ctx, r.ID, "os:alice")
	if err != nil || !c.Done {
		t.Fatalf("pause of a rule in trial = %+v, %v; want a change", c, err)
	}
	if got, _ := s.Regex(ctx, r.ID); got.TrialUntil != nil || got.Action != store.ActionMonitor {
		t.Errorf("after pause: action %s, trial until %v; want monitor, no trial", got.Action, got.TrialUntil)
	}
	if ended, _ := s.EndTrials(ctx, until.Add(time.Minute), nil); len(ended) != 0 {
		t.Errorf("a paused rule's trial still ended: %+v", ended)
	}
	if c, _ := s.PauseRule(ctx, r.ID, "os:bob"); c.Done {
		t.Errorf("a second pause changed something: %+v", c)
	}
}

// TestChangesAreAuditedWithThem: every admin change made with an actor
// writes its audit entry in its own transaction (a change that fails
// writes none); changes by securechat itself (actor "") write none.
func TestChangesAreAuditedWithThem(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	r, err := s.AddRuleAs(ctx, store.Regex{Pattern: "tok_[a-z]+", Description: "t", Enabled: true}, "os:alice")
	if err != nil {
		t.Fatal(err)
	}
	leak := queue(t, s, "1.1", store.Finding{RegexID: r.ID, Rule: "t", Excerpt: "tok_***", Start: 0, End: 8, MAC: "m1"})
	av, err := s.AllowValue(ctx, leak, "by securechat's own code: not audited")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAllowed(ctx, av.ID, "os:alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAllowed(ctx, av.ID, "os:alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second unallow: %v, want ErrNotFound (and no audit entry)", err)
	}
	if _, err := s.CancelDeletions(ctx, store.Selection{LeakIDs: []int64{leak}}, "os:alice", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelDeletions(ctx, store.Selection{LeakIDs: []int64{leak}}, "os:alice", "again"); err != nil {
		t.Fatal(err) // nothing left to cancel: no entry
	}
	if _, err := s.DeleteRegex(ctx, 999, "os:alice"); err == nil {
		t.Fatal("removed a rule that does not exist")
	}
	if _, _, err := s.UpdateRegex(ctx, r.ID, store.RegexUpdate{Description: ptr("tokens")}, ""); err != nil {
		t.Fatal(err) // by securechat: no entry
	}
	if _, err := s.DeleteRegex(ctx, r.ID, "slack:U0ADMIN"); err != nil {
		t.Fatal(err)
	}
	log, _ := s.AuditLog(ctx, "", 10)
	var got []string
	for _, e := range log {
		got = append(got, e.Actor+" "+e.Action+" "+e.Target)
	}
	want := []string{"slack:U0ADMIN rule.remove regex:1", "os:alice deletions.cancel leak:1", "os:alice value.unallow leak:1", "os:alice rule.add regex:1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func ptr[T any](v T) *T { return &v }
