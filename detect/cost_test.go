package detect

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/securechat/securechat/internal/corpus"
)

func TestRuleCostLimits(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want string // "" when admitted
	}{
		{"two counted repeats of 1000", Rule{Pattern: `[A-Za-z0-9+/]{1000}[A-Za-z0-9+/]{1000}`}, "2002 instructions, the limit is 2000"},
		{"one counted repeat of 1000", Rule{Pattern: `[A-Za-z0-9+/]{1000}`}, ""},
		{"four of them", Rule{Pattern: strings.Repeat(`[A-Za-z0-9+/]{1000}`, 4)}, "4002 instructions"},
		{"allow pattern too costly", Rule{Pattern: `key=[a-z]+`, AllowPatterns: []string{`[a-z]{999}[a-z]{999}x`}}, "allow pattern"},
		{"large but admitted", Rule{Pattern: `(?i)[\w.-]{0,50}?(?:access|auth|key|secret|token)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|:)[\x60'"\s=]{0,5}([\w.=-]{10,150})`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := Compile([]Rule{tt.rule})
			switch {
			case tt.want == "" && len(errs) > 0:
				t.Fatalf("refused: %v", errs)
			case tt.want != "" && len(errs) == 0:
				t.Fatal("admitted")
			case tt.want != "" && !strings.Contains(errs[0].Error(), tt.want):
				t.Fatalf("error %q lacks %q", errs[0], tt.want)
			}
			if tt.want != "" && len(errs[0].Error()) > 600 {
				t.Errorf("the error is %d bytes: long patterns must be shortened", len(errs[0].Error()))
			}
		})
	}
	// A set past the total: the rules that do not fit are refused, named.
	var many []Rule
	for i := range 200 {
		many = append(many, Rule{ID: int64(i + 1), Pattern: fmt.Sprintf(`tok%03d_[a-z0-9]{900}`, i)})
	}
	set, errs := Compile(many)
	if len(errs) == 0 || !errors.Is(errs[0], ErrSetTooLarge) || !strings.Contains(errs[0].Error(), "rule set would compile") {
		t.Fatalf("an oversized set: %d errors, first %v", len(errs), errs)
	}
	if set.Len()+len(errs) != len(many) || set.Len() < 100 {
		t.Errorf("%d rules admitted, %d refused", set.Len(), len(errs))
	}
	// What securechat ships and benchmarks fits with room to spare.
	total := 0
	for _, r := range append(rules1000(t), builtinRules()...) {
		c, err := Cost(r)
		if err != nil {
			t.Fatalf("rule %d: %v", r.ID, err)
		}
		total += c
	}
	if total > MaxSetProgram*3/4 {
		t.Errorf("the 1,000-rule benchmark set and the builtins cost %d, over 3/4 of MaxSetProgram", total)
	}
	t.Logf("1,000 rules + builtins: %d instructions of %d", total, MaxSetProgram)
}

func builtinRules() []Rule {
	var rs []Rule
	for i, b := range Builtins() {
		rs = append(rs, b.Rule(int64(5000+i)))
	}
	return rs
}

// worstCaseSet is the 1,000-rule benchmark set plus the builtins, filled
// up to MaxSetProgram with rules of gitleaks' keyword-assignment shape (its
// costliest common form), each with its own keyword.
func worstCaseSet(tb testing.TB, limit int) []Rule {
	rules := append(rules1000(tb), builtinRules()...)
	total := 0
	for _, r := range rules {
		c, err := Cost(r)
		if err != nil {
			tb.Fatal(err)
		}
		total += c
	}
	for i := 0; ; i++ {
		r := Rule{ID: int64(10000 + i), Pattern: fmt.Sprintf(`(?i)[\w.-]{0,50}?(?:vendor%04d)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'"\s=]{0,5}([a-z0-9=_\-]{32})(?:[\x60'"\s;]|\\[nr]|$)`, i)}
		c, err := Cost(r)
		if err != nil {
			tb.Fatal(err)
		}
		if total+c > limit {
			return rules
		}
		total += c
		rules = append(rules, r)
	}
}

// worstCaseText is a 40 KB message (Slack's limit) built to defeat the
// prefilter: every required literal of the set, each followed by an
// assignment, then base64-like filler that keeps counted classes alive.
func worstCaseText(rules []Rule) string {
	var msg strings.Builder
	for _, r := range rules {
		_, tree, _ := compilePattern(r.Pattern)
		if lits := requiredLiterals(tree); len(lits) > 0 {
			msg.WriteString(lits[0])
			msg.WriteString(" = ")
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-"
	for msg.Len() < 40_000 {
		msg.WriteByte(alphabet[rnd.IntN(len(alphabet))])
	}
	return msg.String()[:40_000]
}

// BenchmarkWorstCase40KB scans the worst message for the largest admissible
// set (worstCaseSet, at MaxSetProgram): the engine, and the same rules run
// with Go's regexp alone (the baseline). Compare with Slack's 3 s ack
// deadline.
func BenchmarkWorstCase40KB(b *testing.B) {
	// 100k was the set limit before gitleaks v8.30.1's default config had
	// to fit; it is kept as the baseline of the same run.
	for _, limit := range []int{100_000, MaxSetProgram} {
		rules := worstCaseSet(b, limit)
		set, errs := Compile(rules)
		if len(errs) > 0 {
			b.Fatal(errs)
		}
		text := worstCaseText(rules)
		for _, bc := range []struct {
			name string
			scan func(string) []Match
		}{{"go-regexp", set.scanAll}, {"engine", set.ScanNormalized}, {"engine+decoding", func(t string) []Match {
			return append(set.ScanNormalized(t), set.ScanEncoded(t)...)
		}}} {
			b.Run(fmt.Sprintf("set=%dk/%s", limit/1000, bc.name), func(b *testing.B) {
				for b.Loop() {
					bc.scan(text)
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/msg")
			})
		}
	}
}

// TestLongTextsMatchGo checks the RE2 path for long texts against Go's
// regexp (the 1,000-rule set is FuzzPrefilterEqualsFullScan's and
// TestPrefilterEqualsFullScan's): an adversarial message, and long pastes
// with non-ASCII text, (?i) folds and invalid UTF-8.
func TestLongTextsMatchGo(t *testing.T) {
	rules := append(loadRules(t, "testdata/patterns100.txt"), builtinRules()...)
	for i := range 20 {
		rules = append(rules, Rule{ID: int64(10000 + i), Pattern: fmt.Sprintf(`(?i)[\w.-]{0,50}?(?:vendor%04d)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|:)[\x60'"\s=]{0,5}([a-z0-9=_\-]{32})`, i)})
	}
	set, errs := Compile(rules)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	pad := strings.Repeat("lorem ipsum dolor, ключ sit amet; ", 150)
	texts := []string{
		worstCaseText(rules),
		pad + "PAſSWORD = Tr0ub4dor&3x-horse-staple " + pad,
		pad + "card 4111 1111 1111 1111 and AKIAIOSFODNN7EXAMPLQ " + pad,
		pad + "\xff\xfe broken utf-8 token_abcdefghij0123456789 " + pad,
	}
	for i, text := range texts {
		got, want := set.ScanNormalized(text), set.scanAll(text)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("text %d (%d bytes): engine found %d matches, Go's regexp %d", i, len(text), len(got), len(want))
		}
	}
}

func TestGitleaksSecretGroupAndEntropy(t *testing.T) {
	acme := `(?i)acme[_-]?token(\s*)[:=]\s*([a-z0-9]{32})`
	token := "abcdefghijklmnopqrstuvwxyz012345"
	tests := []struct {
		name string
		rule Rule
		text string
		want string // the secret found, "" for none
	}{
		{"first non-empty group, not group 1", Rule{Pattern: acme, SecretGroup: FirstGroup}, "acme_token=" + token, token},
		{"a non-empty separator group comes first, as in gitleaks", Rule{Pattern: acme, SecretGroup: FirstGroup}, "acme_token  = " + token, "  "},
		{"group 1 alone misses it", Rule{Pattern: acme, SecretGroup: 1}, "acme_token=" + token, ""},
		{"entropy at the threshold is dropped", Rule{Pattern: `k=([ab]{4})`, SecretGroup: 1, Entropy: 1}, "k=aabb", ""},
		{"entropy above it is kept", Rule{Pattern: `k=([ab]{4})`, SecretGroup: 1, Entropy: 0.99}, "k=aabb", "aabb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, errs := Compile([]Rule{tt.rule})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			ms := set.ScanNormalized(tt.text)
			got := ""
			if len(ms) > 0 {
				got = tt.text[ms[0].Start:ms[0].End]
			}
			if got != tt.want {
				t.Errorf("secret %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAllowlists(t *testing.T) {
	rule := Rule{Pattern: `tok_([a-z0-9]{8})`, SecretGroup: 1, Allowlists: []Allowlist{
		{Regexes: []string{`^0+$`}},                                                  // the secret
		{Target: TargetMatch, Regexes: []string{`^tok_dead`}},                        // the whole match
		{Target: TargetLine, Regexes: []string{`(?i)\bexample\b`}},                   // the line
		{And: true, Regexes: []string{`^te`}, Stopwords: []string{"ST"}},             // both parts
		{And: true, Target: TargetLine, Regexes: []string{`never-matches-anything`}}, // inert alone
	}}
	tests := []struct {
		text  string
		found bool
	}{
		{"tok_abcd1234", true},
		{"tok_00000000", false},
		{"tok_deadbeef", false},
		{"first line\nan example: tok_abcd1234\nlast", false},
		{"an example\ntok_abcd1234", true}, // the allowlisted word is on another line
		{"tok_test0001", false},
		{"tok_tezz0001", true},
	}
	set, errs := Compile([]Rule{rule})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, tt := range tests {
		if got := len(set.ScanNormalized(tt.text)) > 0; got != tt.found {
			t.Errorf("%q: found %v, want %v", tt.text, got, tt.found)
		}
	}
	// Many matches on several lines: each line's own verdict, cached per
	// line and allowlist, applies to the matches on it and to no other.
	multi := "tok_aaaa0001 tok_aaaa0002 example tok_aaaa0003\ntok_bbbb0001 tok_bbbb0002\n\ntok_cccc0001 an Example"
	var got []string
	for _, m := range set.ScanNormalized(multi) {
		got = append(got, multi[m.Start:m.End])
	}
	if strings.Join(got, ",") != "bbbb0001,bbbb0002" {
		t.Errorf("matches kept across lines: %v, want the second line's two", got)
	}
	if _, errs := Compile([]Rule{{Pattern: `x+`, Allowlists: []Allowlist{{Target: "file"}}}}); len(errs) == 0 {
		t.Error("an unknown allowlist target was accepted")
	}
}

func TestScanEncoded(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	set, errs := Compile([]Rule{{ID: 1, Pattern: `AKIA[A-Z2-7]{16}`}, {ID: 2, Pattern: `eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}`}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	set = set.WithMACKey([]byte("decode-test-key-0123456789"))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, text string
		rule       int64
	}{
		{"base64", "config: " + b64("aws_key = AKIAIOSFODNN7EXAMPLQ") + " end", 1},
		{"base64 of base64", "x " + b64(b64("key AKIAIOSFODNN7EXAMPLQ here")) + " y", 1},
		{"hex", "blob " + hex.EncodeToString([]byte("the key AKIAIOSFODNN7EXAMPLQ")), 1},
		{"percent", "https://x.io/?q=" + url.QueryEscape("AKIAIOSFODNN7EXAMPLQ&x=1") + " ok", 1},
		{"a JWT inside base64", "token: " + b64(`{"jwt":"`+jwt+`"}`), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := set.ScanEncoded(tt.text)
			if len(ms) == 0 || ms[0].RuleID != tt.rule || !ms[0].Decoded {
				t.Fatalf("ScanEncoded(%q) = %+v", tt.text, ms)
			}
			seg := tt.text[ms[0].Start:ms[0].End]
			if strings.ContainsAny(seg, " ") || len(seg) < 16 {
				t.Errorf("the span %q is not the encoded segment", seg)
			}
			if ms[0].MAC != fingerprint([]byte("decode-test-key-0123456789"), map[int64]string{1: "AKIAIOSFODNN7EXAMPLQ", 2: jwt}[tt.rule]) {
				t.Error("the fingerprint is not of the decoded value")
			}
			if strings.Contains(ms[0].Excerpt, "IOSFODNN7") {
				t.Errorf("excerpt %q is not masked", ms[0].Excerpt)
			}
		})
	}
	if ms := set.ScanEncoded("plain words and a hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"); len(ms) != 0 {
		t.Errorf("found %+v in text with nothing encoded", ms)
	}
}

// BenchmarkScanEncoded is the cost of looking into encoded segments, on the
// realistic corpus with the 1,000-rule set: compare with Scan1000/engine.
func BenchmarkScanEncoded(b *testing.B) {
	set, _ := Compile(rules1000(b))
	gen := corpus.New(corpus.Options{Seed: 42})
	n := 0
	for b.Loop() {
		b.StopTimer()
		msgs := gen.Messages(5000)
		texts := make([]string, len(msgs))
		for i, m := range msgs {
			texts[i] = Normalize(m.Text)
		}
		b.StartTimer()
		for _, t := range texts {
			set.ScanEncoded(t)
		}
		n += len(texts)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
