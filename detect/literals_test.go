package detect

import (
	"math/rand/v2"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"

	"github.com/securechat/securechat/internal/corpus"
)

func TestRequiredLiterals(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string // nil: no usable literal
	}{
		{`ghp_[0-9a-zA-Z]{36}`, []string{"ghp_"}},
		{`xox[baprs]-[0-9]+`, []string{"xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-"}},
		{`(?i)aws_?secret`, []string{"aws_secret", "awssecret"}},
		{`(?:A3T[A-Z0-9]|AKIA|ASIA)[A-Z2-7]{16}`, []string{"a3t", "akia", "asia"}},
		{`https?://[^\s]+`, []string{"http://", "https://"}},
		{`(?i)password\s*=`, []string{"password"}},
		{`(?i)contraseña`, []string{"contrase"}},
		{`contraseña`, []string{"contraseña"}},
		{`-----BEGIN[ A-Z]*PRIVATE KEY-----`, []string{"private key-----"}},
		{`(5018|5020|5038|6304|6759|6761|6763)[0-9]{8,15}`, []string{"5018", "5020", "5038", "6304", "6759", "6761", "6763"}},
		{`\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b`, nil},
		{`\b4[0-9]{3}(?:[ -]?[0-9]{4}){3}\b`, nil},
		{`ab`, nil},
		{`(?:foo|ba)r`, []string{"bar", "foor"}[:0:0]}, // "bar" has 3, "foor" 4: kept below
		{`(?:foo|x)`, nil},
		{`(?:abc)+`, []string{"abc"}},
		{`(?:abc)?def`, []string{"abcdef", "def"}},
		{`sk-[a-z]{20}T3BlbkFJ`, []string{"t3blbkfj"}},
		{`.*secret.*`, []string{"secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			_, tree, err := compilePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			got := requiredLiterals(tree)
			want := tt.want
			if tt.pattern == `(?:foo|ba)r` {
				want = []string{"bar", "foor"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("requiredLiterals(%s) = %q, want %q", tt.pattern, got, want)
			}
		})
	}
}

func TestACMatcherAgainstBruteForce(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := "abcAB-_:/ xyz"
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rnd.IntN(len(alphabet))]
		}
		return string(b)
	}
	for round := range 200 {
		var pats []string
		var ids []int32
		for i := range 1 + rnd.IntN(20) {
			pats = append(pats, strings.ToLower(word(1+rnd.IntN(5))))
			ids = append(ids, int32(i))
		}
		m := newACMatcher(pats, ids)
		text := word(rnd.IntN(200))
		got := map[int32]bool{}
		m.scan(text, func(id int32) { got[id] = true })
		lower := strings.ToLower(text)
		for i, p := range pats {
			if want := strings.Contains(lower, p); want != got[ids[i]] {
				t.Fatalf("round %d: pattern %q in %q: got %v, want %v", round, p, text, got[ids[i]], want)
			}
		}
	}
}

// TestPrefilterEqualsFullScan checks the engine and the keyword peer
// against running every rule, on a realistic corpus plus fold evasions:
// many messages with the 100 benchmark rules, fewer with the 1,000 (the
// full scan of 1,000 rules is slow, the more so under -race).
func TestPrefilterEqualsFullScan(t *testing.T) {
	extra := []string{"PAſSWORD = hunter2hunter2", "\u212aEY: xoxb-1234567890-1234567890-abcdefghijklmnopqrstuvwx", "Password is TOPSECRET99"}
	for _, tc := range []struct {
		name  string
		rules []Rule
		msgs  int
	}{
		{"100 rules", loadRules(t, "testdata/patterns100.txt"), 1500},
		{"1000 rules", rules1000(t), 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, errs := Compile(tc.rules)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			texts := slices.Clone(extra)
			for _, m := range corpus.New(corpus.Options{Seed: 3, SecretShare: 0.2}).Messages(tc.msgs) {
				texts = append(texts, m.Text)
			}
			for _, text := range texts {
				norm := Normalize(text)
				got, want := set.ScanNormalized(norm), set.scanAll(norm)
				if peer := set.scanKeywords(norm); !slices.Equal(peer, want) {
					t.Fatalf("keyword scan differs on %q", norm[:min(len(norm), 200)])
				}
				if !slices.Equal(got, want) {
					t.Fatalf("prefiltered scan differs on %q:\n got  %v\n want %v", norm[:min(len(norm), 200)], got, want)
				}
			}
		})
	}
}

// FuzzPrefilterEqualsFullScan is the differential fuzz test: for any pattern
// and text, the prefiltered scan reports exactly what running the rule
// reports.
func FuzzPrefilterEqualsFullScan(f *testing.F) {
	seeds := [][2]string{
		{`(?i)password\s*[:=]\s*\S+`, "PAſSWORD: x1"},
		{`(?i)kelvin`, "\u212aELVIN"},
		{`xox[bp]-\d+`, "XOXB-123 xoxp-9"},
		{`(?:A3T[A-Z0-9]|AKIA)[A-Z2-7]{16}`, "AKIAIOSFODNN7EXAMPL2"},
		{`(?i)contraseña\s+\w+`, "CONTRASEÑA abc"},
		{`.*(6759)[0-9]{8,15}.*`, "x 6759649826438453 y"},
		{`(?:abc)?def|ghi+`, "abdef ghii"},
		{`\x{17f}ecret`, "ſecret"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, text string) {
		if _, err := syntax.Parse(pattern, syntax.Perl); err != nil {
			return
		}
		set, errs := Compile([]Rule{{ID: 1, Pattern: pattern}, {ID: 2, Pattern: `(?i)token\s*=\s*\w+`}})
		if len(errs) > 0 {
			return
		}
		got, want := set.ScanNormalized(text), set.scanAll(text)
		if !slices.Equal(got, want) {
			t.Fatalf("pattern %q text %q: prefiltered %v, full %v", pattern, text, got, want)
		}
	})
}

// TestEngineEdgeCases runs the 1,000-rule set over the inputs the engine's
// fast paths could get wrong: a 40 KB message, invalid UTF-8 (RE2 stops
// there, so the exact path must take over), fold evasions, a leading .*.
func TestEngineEdgeCases(t *testing.T) {
	set, errs := Compile(append(rules1000(t), Rule{ID: 5000, Pattern: maestro}))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	big := strings.Repeat("2026-11-25T10:00:00Z INFO request_id=abc status=200 duration_ms=12\n", 600) + " visa 4111 1111 1111 1111 " +
		strings.Repeat("at com.acme.Handler.handle(Handler.java:42)\n", 100)
	inputs := []string{
		big,
		"\xff\xfe card 4111 1111 1111 1111 ssn 536-22-1234 \xc3",
		"PAſSWORD = hunter2hunter2 and \u212aEY",
		"my card is 6759649826438453 ok",
	}
	for _, in := range inputs {
		got, want := set.ScanNormalized(in), set.scanAll(in)
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("on %q…: engine %d findings, full scan %d", in[:min(40, len(in))], len(got), len(want))
		}
	}
	if len(big) < 40_000 {
		t.Fatalf("the big message is only %d bytes", len(big))
	}
	// The Maestro excerpt is the card, not the line.
	for _, m := range set.ScanNormalized(inputs[3]) {
		if m.RuleID == 5000 && m.Excerpt != "************8453" {
			t.Errorf("Maestro excerpt %q", m.Excerpt)
		}
	}
}
