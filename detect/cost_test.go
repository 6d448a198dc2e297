package detect

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRuleCostLimits(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want string // "" when admitted
	}{
		{"counted repeat of 1000", Rule{Pattern: `[A-Za-z0-9+/]{1000}`}, "1002 instructions, the limit is 1000"},
		{"four of them", Rule{Pattern: strings.Repeat(`[A-Za-z0-9+/]{1000}`, 4)}, "4002 instructions"},
		{"allow pattern too costly", Rule{Pattern: `key=[a-z]+`, AllowPatterns: []string{`[a-z]{999}x`}}, "allow pattern"},
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
	for i := range 130 {
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

// BenchmarkWorstCase40KB scans one 40 KB message (Slack's limit) built to
// defeat the prefilter: every required literal of the set, then base64-like
// filler that keeps counted classes alive, with the 1,000-rule set plus the
// builtins. Compare with Slack's 3 s ack deadline.
func BenchmarkWorstCase40KB(b *testing.B) {
	rules := append(rules1000(b), builtinRules()...)
	set, errs := Compile(rules)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	var msg strings.Builder
	for _, r := range rules {
		_, tree, _ := compilePattern(r.Pattern)
		if lits := requiredLiterals(tree); len(lits) > 0 {
			msg.WriteString(lits[0])
			msg.WriteByte(' ')
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-"
	for msg.Len() < 40_000 {
		msg.WriteByte(alphabet[rnd.IntN(len(alphabet))])
	}
	text := msg.String()[:40_000]
	for b.Loop() {
		set.ScanNormalized(text)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/msg")
}
