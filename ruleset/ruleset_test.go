package ruleset_test

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/store"
)

const card = "6759649826438453"

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "rules.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestLoadAndDecide(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	add := func(r store.Regex) store.Regex {
		t.Helper()
		r, err := st.AddRule(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cards := add(store.Regex{Pattern: `(6759|6761)[0-9]{12}`, Description: "cards", Enabled: true})
	aws := add(store.Regex{Pattern: `AKIA[A-Z2-7]{16}`, Description: "aws", Enabled: true, Action: store.ActionMonitor})
	add(store.Regex{Pattern: `disabled[0-9]+`, Enabled: false})
	broken := add(store.Regex{Pattern: `(unclosed`, Enabled: true}) // slipped in behind the CLI's back

	key := []byte("ruleset-test-key-0123456789")
	snap, err := ruleset.Load(ctx, st, key)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Set.Len() != 2 || len(snap.Skipped) != 1 || !strings.Contains(snap.Skipped[0].Error(), "regex "+itoa(broken.ID)) {
		t.Fatalf("snapshot: %d rules, skipped %v", snap.Set.Len(), snap.Skipped)
	}
	gen, _ := st.RulesGeneration(ctx)
	if snap.Generation != gen {
		t.Errorf("generation %d, store at %d", snap.Generation, gen)
	}

	// Allowlist the card, through a leak as 'leaks allow' does.
	v := snap.Decide("card "+card, false)
	if len(v.Findings) != 1 || v.Findings[0].MAC == "" {
		t.Fatalf("findings = %+v", v.Findings)
	}
	res, err := st.RecordLeak(ctx, store.Message{Channel: "C1", User: "U1", TS: "1.1"}, v.Findings, true)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := st.Leaks(ctx, store.LeakFilter{DeletionID: res.DeletionID})
	if _, err := st.AllowValue(ctx, ls[0].ID, "docs"); err != nil {
		t.Fatal(err)
	}
	snap, err = ruleset.Load(ctx, st, key)
	if err != nil {
		t.Fatal(err)
	}
	unkeyed, err := ruleset.Load(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		snap        *ruleset.Snapshot
		text        string
		monitor     bool
		rules       []int64
		deletes     bool
		allowlisted int
	}{
		{"clean", snap, "lunch?", false, nil, false, 0},
		{"delete rule", snap, "pay 6761000410900000", false, []int64{cards.ID}, true, 0},
		{"monitor rule alone never deletes", snap, "AKIAIOSFODNN7EXAMPLE", false, []int64{aws.ID}, false, 0},
		{"one enforcing finding deletes", snap, "AKIAIOSFODNN7EXAMPLE 6761000410900000", false, []int64{cards.ID, aws.ID}, true, 0},
		{"monitor mode never deletes", snap, "pay 6761000410900000", true, []int64{cards.ID}, false, 0},
		{"allowlisted value is no finding", snap, "again " + card, false, nil, false, 1},
		{"allowlisted value next to a real one", snap, card + " and 6761000410900000", false, []int64{cards.ID}, true, 1},
		{"without the key nothing is allowlisted", unkeyed, "again " + card, false, []int64{cards.ID}, true, 0},
		{"disabled rule", snap, "disabled123", false, nil, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.snap.Decide(detect.Normalize(tt.text), tt.monitor)
			var got []int64
			for _, f := range v.Findings {
				got = append(got, f.RegexID)
				want := tt.snap.Action(f.RegexID)
				if tt.monitor {
					want = store.ActionMonitor
				}
				if f.Action != want {
					t.Errorf("finding of regex %d has action %s, want %s", f.RegexID, f.Action, want)
				}
				if strings.Contains(f.Excerpt, "0410900000") {
					t.Errorf("excerpt %q is not masked", f.Excerpt)
				}
			}
			if !sameIDs(got, tt.rules) || v.Delete != tt.deletes || v.Allowlisted != tt.allowlisted {
				t.Errorf("Decide = rules %v delete %v allowlisted %d; want %v %v %d", got, v.Delete, v.Allowlisted, tt.rules, tt.deletes, tt.allowlisted)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		r       store.Regex
		wantErr string
	}{
		{"plain", store.Regex{Pattern: `AKIA[A-Z2-7]{16}`}, ""},
		{"bad syntax", store.Regex{Pattern: `(a`}, "missing closing )"},
		{"matches empty", store.Regex{Pattern: `a*`}, "empty string"},
		{"unknown validator", store.Regex{Pattern: `[0-9]{16}`, Validator: "nope"}, "unknown validator"},
		{"secret group out of range", store.Regex{Pattern: `k=([a-z]+)`, SecretGroup: 2}, "secret group 2"},
		{"bad allow pattern", store.Regex{Pattern: `k=[a-z]+`, AllowPatterns: []string{`(x`}}, "allow pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ruleset.Validate(tt.r)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "is not usable"):
				t.Errorf("the error repeats the pattern's preamble: %v", err)
			}
		})
	}
}

func TestFromBuiltinKeepsEveryCheck(t *testing.T) {
	for _, b := range detect.Builtins() {
		r := ruleset.FromBuiltin(b)
		got, want := ruleset.Rule(r), b.Rule(0)
		if got.Pattern != want.Pattern || got.Validator != want.Validator || got.SecretGroup != want.SecretGroup ||
			got.Entropy != want.Entropy || len(got.Keywords) != len(want.Keywords) || len(got.AllowPatterns) != len(want.AllowPatterns) ||
			len(got.Stopwords) != len(want.Stopwords) || r.Source != "builtin:"+b.Name || !r.Enabled {
			t.Errorf("builtin %s: stored as %+v, compiled as %+v", b.Name, r, got)
		}
		if err := ruleset.Validate(r); err != nil {
			t.Errorf("builtin %s does not validate: %v", b.Name, err)
		}
	}
}

func sameIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[int64]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestGenericFindingYieldsToSpecific: as in gitleaks, a generic rule's
// finding is dropped when a specific rule's secret on the same line holds
// it, and kept on another line.
func TestGenericFindingYieldsToSpecific(t *testing.T) {
	rs := []store.Regex{
		{ID: 1, Pattern: `(?i)token\s*=\s*([a-z0-9_]{16,})`, SecretGroup: 1, Enabled: true, Source: "gitleaks:generic-api-key"},
		{ID: 2, Pattern: `acme_[a-z0-9]{20}`, Enabled: true, Source: "gitleaks:acme-token"},
		{ID: 3, Pattern: `(?i)token\s*=\s*([a-z0-9_]{16,})`, SecretGroup: 1, Enabled: true, Source: "gitleaks:another-id-same-regex"},
	}
	snap := ruleset.New(rs, nil, nil)
	ids := func(text string) []int64 {
		var out []int64
		for _, f := range snap.Decide(text, false).Findings {
			out = append(out, f.RegexID)
		}
		return out
	}
	if got := ids("token = acme_abcdefghij0123456789"); !sameIDs(got, []int64{2, 3}) {
		t.Errorf("same line: %v, want the specific rule (2) and the non-generic one sharing the regex (3)", got)
	}
	// Rule 3 shares the generic regex under another id: it is specific, so
	// it is kept, and it covers the generic finding wherever that is.
	if got := ids("token = zzzzzzzzzzzzzzzzzzzz\nacme_abcdefghij0123456789"); !sameIDs(got, []int64{2, 3}) {
		t.Errorf("different lines, with rule 3: %v, want 2 and 3", got)
	}
	snap = ruleset.New(rs[:2], nil, nil)
	if got := ids("token = zzzzzzzzzzzzzzzzzzzz\nacme_abcdefghij0123456789"); !sameIDs(got, []int64{1, 2}) {
		t.Errorf("a generic secret no specific rule holds: %v, want 1 and 2", got)
	}
	if got := ids("token = acme_abcdefghij0123456789"); !sameIDs(got, []int64{2}) {
		t.Errorf("same secret on one line: %v, want only the specific rule", got)
	}
}

// TestDecideLooksIntoEncodedSegments: a key pasted base64-encoded is found,
// pointed at the encoded segment, masked from the decoded key, and
// fingerprinted as the key itself, so allowlisting the plain key covers it.
func TestDecideLooksIntoEncodedSegments(t *testing.T) {
	key := []byte("decide-decode-test-key-0123456789")
	rs := []store.Regex{{ID: 1, Pattern: `AKIA[A-Z2-7]{16}`, Enabled: true, Action: store.ActionDelete}}
	plain := ruleset.New(rs, nil, key).Decide("AKIAIOSFODNN7EXAMPLQ", false)
	if len(plain.Findings) != 1 {
		t.Fatalf("plain: %+v", plain.Findings)
	}
	blob := base64.StdEncoding.EncodeToString([]byte("aws_access_key_id = AKIAIOSFODNN7EXAMPLQ"))
	text := "here is the config: " + blob
	v := ruleset.New(rs, nil, key).Decide(text, false)
	if len(v.Findings) != 1 || !v.Delete {
		t.Fatalf("encoded: %+v", v)
	}
	f := v.Findings[0]
	if text[f.Start:f.End] != blob || f.Excerpt != detect.Mask("AKIAIOSFODNN7EXAMPLQ") || f.MAC != plain.Findings[0].MAC {
		t.Errorf("finding %+v: span %q", f, text[f.Start:f.End])
	}
	allowed := ruleset.New(rs, map[string]bool{plain.Findings[0].MAC: true}, key).Decide(text, false)
	if len(allowed.Findings) != 0 || allowed.Allowlisted != 1 {
		t.Errorf("the allowlisted key, base64-encoded: %+v", allowed)
	}
}

// TestExcerptsRevealNoMoreTogether: two rules' findings of one card number,
// base64-encoded (the findings share the segment's span) or written twice
// (the spans are apart), must not together show more of its digits than
// one excerpt would (four); two different cards keep their last four.
func TestExcerptsRevealNoMoreTogether(t *testing.T) {
	const cardNo = "6759649826438453"
	rs := []store.Regex{
		{ID: 1, Pattern: `6759[0-9]{12}`, Enabled: true, Action: store.ActionDelete},
		{ID: 2, Pattern: `(?:code|again) (6759[0-9]{8})`, SecretGroup: 1, Enabled: true, Action: store.ActionDelete},
	}
	snap := ruleset.New(rs, nil, nil)
	shown := func(excerpts []string) map[int]byte {
		// The digits shown, by their place in the card number (excerpts of
		// a card end at its last digit; of the 12-digit part, at its 12th).
		out := map[int]byte{}
		for _, e := range excerpts {
			end := len(cardNo)
			if len(e) == 12 {
				end = 12
			}
			for i := range len(e) {
				if c := e[i]; c >= '0' && c <= '9' {
					out[end-len(e)+i] = c
				}
			}
		}
		return out
	}
	for name, text := range map[string]string{
		"base64": "config: " + base64.StdEncoding.EncodeToString([]byte("code "+cardNo)),
		"twice":  "card " + cardNo + " and again " + cardNo,
	} {
		v := snap.Decide(detect.Normalize(text), false)
		var excerpts []string
		for _, f := range v.Findings {
			excerpts = append(excerpts, f.Excerpt)
		}
		if len(v.Findings) < 2 {
			t.Fatalf("%s: %d findings (%q), want both rules'", name, len(v.Findings), excerpts)
		}
		if got := shown(excerpts); len(got) > 4 {
			t.Errorf("%s: excerpts %q together show %d digits of the card", name, excerpts, len(got))
		}
	}
	v := snap.Decide("cards 6759649826438453 and 6759649826438461", false)
	if len(v.Findings) != 2 || v.Findings[0].Excerpt != "************8453" || v.Findings[1].Excerpt != "************8461" {
		t.Errorf("two different cards: %+v", v.Findings)
	}
}
