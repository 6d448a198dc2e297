package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/store"
)

func TestRegexActions(t *testing.T) {
	e := newEnv(t)
	e.mustRun("regex", "add", maestro, "--action", "monitor", "-d", "Maestro")
	r := e.mustRun("regex", "list")
	if !strings.Contains(r.stdout, "monitor") {
		t.Errorf("list does not show the action:\n%s", r.stdout)
	}
	r = e.mustRun("regex", "update", "1", "--action", "delete", "--json")
	if !strings.Contains(r.stdout, `"action": "delete"`) {
		t.Errorf("update: %s", r.stdout)
	}
	for _, bad := range [][]string{
		{"regex", "add", "abc+", "--action", "shred"},
		{"regex", "update", "1", "--action", "shred"},
		{"regex", "update", "1"},
		{"regex", "update", "9", "--action", "monitor"},
	} {
		if r := e.run("", bad...); r.code != ExitError {
			t.Errorf("%v: exit %d", bad, r.code)
		}
	}
}

func seedHits(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	clock := fixedNow.Add(-3 * 24 * time.Hour)
	s, err := store.Open(ctx, e.db, store.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	add := func(age time.Duration, ch, ts string, regex int64, rule, action, mac string) {
		clock = fixedNow.Add(-age)
		_, err := s.RecordLeak(ctx, store.Message{Channel: ch, User: "U1", TS: ts},
			[]store.Finding{{RegexID: regex, Rule: rule, Excerpt: "4111***********1111", Action: action, MAC: mac}}, action == store.ActionDelete)
		if err != nil {
			t.Fatal(err)
		}
	}
	add(72*time.Hour, "C0GENERAL", "1.1", 1, "Cards", store.ActionDelete, "aa11")
	add(30*time.Hour, "C0GENERAL", "1.2", 1, "Cards", store.ActionDelete, "")
	add(2*time.Hour, "C0RANDOM", "1.3", 2, "Noisy rule", store.ActionMonitor, "bb22")
	add(1*time.Hour, "C0RANDOM", "1.4", 2, "Noisy rule", store.ActionMonitor, "cc33")
	add(10*24*time.Hour, "C0OLD", "1.5", 2, "Noisy rule", store.ActionMonitor, "")
}

func TestLeaksStats(t *testing.T) {
	e := newEnv(t)
	seedHits(t, e)
	r := e.mustRun("leaks", "stats")
	golden(t, "leaks_stats.txt", r.stdout)
	r = e.mustRun("leaks", "stats", "--json")
	golden(t, "leaks_stats.json", r.stdout)
	r = e.mustRun("leaks", "list", "--action", "monitor", "--json")
	if strings.Count(r.stdout, `"action": "monitor"`) != 3 || strings.Contains(r.stdout, `"action": "delete"`) {
		t.Errorf("--action monitor: %s", r.stdout)
	}
}

func TestLeaksAllow(t *testing.T) {
	e := newEnv(t)
	seedHits(t, e)
	r := e.run("", "leaks", "allow", "1", "--note", "docs card")
	if r.code != ExitOK || !strings.Contains(r.stderr, "Allowed the value of leak 1") {
		t.Fatalf("allow 1: %+v", r)
	}
	// Allowing the same value again is harmless.
	e.mustRun("leaks", "allow", "1")
	r = e.run("", "leaks", "allow", "2")
	if r.code != ExitError || !strings.Contains(r.stderr, "no value fingerprint") || !strings.Contains(r.stderr, EnvAllowKey) {
		t.Errorf("allow without fingerprint: %+v", r)
	}
	if r := e.run("", "leaks", "allow", "99"); r.code != ExitError || !strings.Contains(r.stderr, "leak 99: not found") {
		t.Errorf("allow unknown: %+v", r)
	}
	r = e.mustRun("leaks", "allowlist", "--json")
	if strings.Count(r.stdout, `"leak_id": 1`) != 1 || !strings.Contains(r.stdout, "docs card") || strings.Contains(r.stdout, "aa11") {
		t.Errorf("allowlist: %s", r.stdout)
	}
	e.mustRun("leaks", "unallow", "1")
	if r := e.mustRun("leaks", "allowlist", "--json"); r.stdout != "[]\n" {
		t.Errorf("after unallow: %s", r.stdout)
	}
	if r := e.run("", "leaks", "unallow", "1"); r.code != ExitError {
		t.Errorf("unallow twice: exit %d", r.code)
	}
}
