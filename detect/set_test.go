package detect

import (
	"errors"
	"fmt"
	"os"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"testing"
)

const maestro = `.*(5018|5020|5038|6304|6759|6761|6763)[0-9]{8,15}.*`

func mustCompile(t testing.TB, patterns ...string) *Set {
	t.Helper()
	rules := make([]Rule, len(patterns))
	for i, p := range patterns {
		rules[i] = Rule{ID: int64(i + 1), Pattern: p, Description: fmt.Sprintf("rule %d", i+1)}
	}
	set, errs := Compile(rules)
	if len(errs) > 0 {
		t.Fatalf("Compile: %v", errs)
	}
	return set
}

func TestScan(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		text    string // as the Slack API delivers it
		want    []string
	}{
		{"maestro from the README", maestro, "6759649826438453", []string{"************8453"}},
		{"maestro short", maestro, "676100041090", []string{"********1090"}},
		{"maestro masks the card, not the line", maestro, "my card is 6759649826438453 ok?", []string{"************8453"}},
		{"maestro in a tel link", maestro, "call <tel:6759649826438453|6759649826438453>", []string{"************8453"}},
		{"two cards on one line", maestro, "6759649826438453 and 676100041090", []string{"************8453", "********1090"}},
		{"card behind escaped ampersand", `\b4[0-9]{3}(?:[ -]?[0-9]{4}){3}\b`, "visa&amp;4111 1111 1111 1111", []string{"***************1111"}},
		{"spaced card in tel link: typed and linked forms", `\b4[0-9]{3}(?:[ -]?[0-9]{4}){3}\b`, "<tel:4111111111111111|4111 1111 1111 1111>", []string{"***************1111", "************1111"}},
		{"spaced maestro found through the tel target", maestro, "<tel:6759649826438453|6759 6498 2643 8453>", []string{"************8453"}},
		{"aws key", `(?:AKIA|ASIA)[A-Z2-7]{16}`, "key: AKIAIOSFODNN7EXAMPL2 thanks", []string{"AK****************L2"}},
		{"token in a labelled link", `xoxb-[0-9]+-[A-Za-z0-9]+`, "<https://x.io/?t=xoxb-123-abcdefgh|my link>", []string{"xo*************gh"}},
		{"email in mailto link", `[a-z]+@corp\.example\.com`, "<mailto:alice@corp.example.com|alice@corp.example.com>", []string{"al****************…om"}},
		{"less-than in code", `<password>[^<]+</password>`, "`&lt;password&gt;hunter2hunter2&lt;/password&gt;`", []string{"<p****************…d>"}},
		{"case-insensitive", `(?i)password\s*=\s*\S{8,}`, "PASSWORD = Tr0ub4dor&amp;3x", []string{"PA****************…3x"}},
		{"clean message", maestro, "lunch at 12? <@U123> :tada:", nil},
		{"user id is not a card", maestro, "<@U6759649826438453>", []string{"************8453"}},
		{"non-ASCII around", `\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b`, "номер 078-05-1120 спасибо", []string{"***********"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := mustCompile(t, tt.pattern)
			var got []string
			norm := Normalize(tt.text)
			for _, m := range set.Scan(tt.text) {
				if m.RuleID != 1 || m.Description != "rule 1" {
					t.Errorf("match names rule %d %q", m.RuleID, m.Description)
				}
				if m.Start < 0 || m.End > len(norm) || m.Start >= m.End {
					t.Errorf("match offsets [%d,%d) outside %d bytes", m.Start, m.End, len(norm))
				} else if Mask(norm[m.Start:m.End]) != m.Excerpt {
					t.Errorf("excerpt %q is not the mask of the matched text", m.Excerpt)
				}
				got = append(got, m.Excerpt)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Scan(%q) excerpts = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestScanEveryRuleEveryMatch(t *testing.T) {
	set := mustCompile(t, `AKIA[A-Z2-7]{16}`, `ghp_[0-9a-zA-Z]{36}`, `\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b`)
	text := "AKIAIOSFODNN7EXAMPL2 ghp_0123456789abcdefghijABCDEFGHIJ012345 078-05-1120 AKIAIOSFODNN7EXAMPL3"
	got := map[int64]int{}
	for _, m := range set.Scan(text) {
		got[m.RuleID]++
	}
	want := map[int64]int{1: 2, 2: 1, 3: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("matches per rule = %v, want %v", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		pattern  string
		wantErr  error  // matched with errors.Is, or nil
		wantCode string // syntax error code, or ""
		hint     string // text the message must contain
	}{
		{pattern: maestro},
		{pattern: `ghp_[0-9a-zA-Z]{36}`},
		{pattern: `\bfoo\b`},
		{pattern: `.*`, wantErr: ErrMatchesEmpty, hint: "empty string"},
		{pattern: `a*`, wantErr: ErrMatchesEmpty},
		{pattern: `(?:secret|)`, wantErr: ErrMatchesEmpty},
		{pattern: `\b`, wantErr: ErrMatchesEmpty},
		{pattern: `^$`, wantErr: ErrMatchesEmpty},
		{pattern: `x{0,3}`, wantErr: ErrMatchesEmpty},
		{pattern: `(a|b?)+`, wantErr: ErrMatchesEmpty},
		{pattern: `foo(`, wantCode: string(syntax.ErrMissingParen), hint: "foo("},
		{pattern: `(?<=x)y`, wantCode: string(syntax.ErrInvalidNamedCapture), hint: "RE2"},
		{pattern: `(?!x)y`, wantCode: string(syntax.ErrInvalidPerlOp), hint: "lookahead"},
		{pattern: `(a)\1`, wantCode: string(syntax.ErrInvalidEscape), hint: "backreferences"},
		{pattern: `a{2000}`, wantCode: string(syntax.ErrInvalidRepeatSize), hint: "1000"},
		{pattern: ``, hint: "empty"},
		{pattern: strings.Repeat("a", MaxPatternLen+1), hint: "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern[:min(len(tt.pattern), 20)], func(t *testing.T) {
			err := Validate(tt.pattern)
			wantOK := tt.wantErr == nil && tt.wantCode == "" && tt.hint == ""
			if wantOK {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tt.pattern, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%q) = nil, want an error", tt.pattern)
			}
			var pe *PatternError
			if !errors.As(err, &pe) || pe.Pattern != tt.pattern {
				t.Errorf("error %v is not a *PatternError naming the pattern", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			var se *syntax.Error
			if tt.wantCode != "" && (!errors.As(err, &se) || string(se.Code) != tt.wantCode) {
				t.Errorf("error %v has not code %q", err, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.hint) {
				t.Errorf("error %q does not say %q", err, tt.hint)
			}
		})
	}
}

func TestCompileSkipsBadRules(t *testing.T) {
	set, errs := Compile([]Rule{
		{ID: 1, Pattern: `good[0-9]+`},
		{ID: 2, Pattern: `bad(`},
		{ID: 3, Pattern: `.*`},
		{ID: 4, Pattern: `fine`},
	})
	if set.Len() != 2 {
		t.Errorf("set has %d rules, want 2", set.Len())
	}
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(errs), errs)
	}
	for i, id := range []int64{2, 3} {
		var pe *PatternError
		if !errors.As(errs[i], &pe) || pe.ID != id || !strings.Contains(errs[i].Error(), fmt.Sprintf("regex %d", id)) {
			t.Errorf("error %d = %v, want one naming regex %d", i, errs[i], id)
		}
	}
	if got := set.Scan("good42 fine"); len(got) != 2 {
		t.Errorf("Scan found %d matches, want 2", len(got))
	}
}

func TestScanConcurrent(t *testing.T) {
	set := mustCompile(t, maestro, `AKIA[A-Z2-7]{16}`, `\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b`, `\b4[0-9]{3}(?:[ -]?[0-9]{4}){3}\b`)
	msgs := []string{"6759649826438453", "nothing", "AKIAIOSFODNN7EXAMPL2 <tel:676100041090|676100041090>",
		"ssn 078-05-1120 and visa 4111 1111 1111 1111", "\xff invalid 078-05-1120"}
	want := make([]int, len(msgs))
	for i, m := range msgs {
		want[i] = len(set.Scan(m))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				k := (g + i) % len(msgs)
				if got := len(set.Scan(msgs[k])); got != want[k] {
					t.Errorf("concurrent Scan(%q) = %d matches, want %d", msgs[k], got, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestReadPatterns(t *testing.T) {
	in := "# comment\n\n  ghp_[0-9a-zA-Z]{36}  \r\n(?i)password\t Passwords \n#another\n"
	got, err := ReadPatterns(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []PatternLine{{Line: 3, Pattern: "ghp_[0-9a-zA-Z]{36}"}, {Line: 4, Pattern: "(?i)password", Description: "Passwords"}}
	if !slices.Equal(got, want) {
		t.Errorf("ReadPatterns = %+v, want %+v", got, want)
	}
	_, err = ReadPatterns(strings.NewReader("ok\n" + strings.Repeat("x", maxListLine+10)))
	if err == nil || !strings.Contains(err.Error(), "line 2 ") {
		t.Errorf("ReadPatterns on an over-long second line: %v, want an error naming line 2", err)
	}
}

// TestPatterns100 checks that the benchmark's rule file compiles whole, so
// the benchmark measures what it says.
func TestPatterns100(t *testing.T) {
	rules := loadRules(t, "testdata/patterns100.txt")
	if len(rules) != 100 {
		t.Fatalf("testdata/patterns100.txt has %d patterns, want 100", len(rules))
	}
	if _, errs := Compile(rules); len(errs) > 0 {
		t.Fatalf("patterns100: %v", errs)
	}
}

func loadRules(tb testing.TB, path string) []Rule {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	patterns, err := ReadPatterns(f)
	if err != nil {
		tb.Fatal(err)
	}
	rules := make([]Rule, len(patterns))
	for i, p := range patterns {
		rules[i] = Rule{ID: int64(i + 1), Pattern: p.Pattern, Description: p.Description}
	}
	return rules
}

func TestFingerprints(t *testing.T) {
	set := mustCompile(t, `\b4[0-9]{3}(?:[ -]?[0-9]{4}){3}\b`)
	if ms := set.Scan("4111 1111 1111 1111"); ms[0].MAC != "" {
		t.Error("a MAC without a key")
	}
	keyed := set.WithMACKey([]byte("k1-0123456789abcdef"))
	a := keyed.Scan("4111 1111 1111 1111")[0].MAC
	b := keyed.Scan("card 4111-1111-1111-1111")[0].MAC
	c := keyed.Scan("4242 4242 4242 4242")[0].MAC
	other := set.WithMACKey([]byte("k2-0123456789abcdef")).Scan("4111 1111 1111 1111")[0].MAC
	if a == "" || a != b {
		t.Errorf("the same value formatted two ways has MACs %q and %q", a, b)
	}
	if a == c || a == other {
		t.Error("different values or keys gave the same MAC")
	}
	if strings.Contains(a, "4111") || len(a) != 64 {
		t.Errorf("MAC %q", a)
	}
}
