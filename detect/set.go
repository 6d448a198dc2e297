// Package detect finds secrets in Slack messages: it normalises Slack's
// escaped, auto-linked text, runs a compiled, immutable set of rules over it
// and reports each match with its position and a masked excerpt. The matched
// text itself never leaves this package.
package detect

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/wasilibs/go-re2"
	"github.com/wasilibs/go-re2/experimental"
)

// errInvalidUTF8 sends text RE2 would stop reading to the exact path.
var errInvalidUTF8 = errors.New("invalid UTF-8")

// Match is one finding in a normalised message.
type Match struct {
	RuleID      int64  `json:"regex_id"`
	Description string `json:"description"`
	Start       int    `json:"start"` // byte offsets in the normalised text
	End         int    `json:"end"`
	Excerpt     string `json:"excerpt"` // masked
	// MAC is the value's keyed fingerprint (see WithMACKey), "" without a key.
	MAC string `json:"-"`
	// Decoded is true for a secret found in the decoded text of an encoded
	// segment (ScanEncoded): Start and End are the segment's.
	Decoded bool `json:"-"`
	// decoded is the secret a decoded match found (the text does not hold it).
	decoded string
}

// Secret returns the matched secret: text[Start:End] of the text that was
// scanned, or for a decoded match the secret in the decoded segment. It is
// for masking jointly (MaskJointly); never store or log it.
func (m Match) Secret(text string) string {
	if m.Decoded {
		return m.decoded
	}
	return text[m.Start:m.End]
}

type compiled struct {
	Rule
	re     *regexp.Regexp
	checks *checks   // nil for a plain rule
	long   *longForm // RE2's form, for long texts
}

// finder is what finds matches: Go's regexp, or RE2's for a long text.
type finder interface {
	FindAllStringIndex(s string, n int) [][]int
	FindAllStringSubmatchIndex(s string, n int) [][]int
}

// longText is the length from which a rule runs with RE2 instead of Go's
// regexp. Go's regexp simulates an NFA over the whole text: on a 40 KB
// message its cost grows with the rule's program (about 0.5 ms per
// instruction in the worst case, 50 ms for a gitleaks keyword-assignment
// rule), while RE2 finds the match with a DFA and runs the NFA over the
// match only. Below it Go is as fast and has no call overhead.
const longText = 4096

// longForm is a rule compiled for RE2, once, the first time a long text
// needs it. re2 stays nil when RE2 may not agree with Go (Unicode classes,
// whose tables may differ) or refuses the pattern: Go then runs it.
type longForm struct {
	once sync.Once
	re2  *re2.Regexp
}

func (l *longForm) get(expr string) *re2.Regexp {
	l.once.Do(func() {
		if strings.Contains(expr, `\p`) || strings.Contains(expr, `\P`) {
			return
		}
		if re, err := re2.Compile(expr); err == nil {
			l.re2 = re
		}
	})
	return l.re2
}

// finder returns what runs the rule on st: RE2 for a long valid UTF-8 text
// when it can take the rule, Go's regexp otherwise.
func (r *compiled) finder(st *scanText) finder {
	if len(st.text) >= longText && !st.goOnly && st.validUTF8() {
		if re := r.long.get(r.re.String()); re != nil {
			return re
		}
	}
	return r.re
}

// Set is an immutable compiled rule set. It is safe for concurrent use by
// any number of goroutines; to change the rules, compile a new Set and swap it.
//
// Scanning is prefiltered in two ways, and only the rules that pass run
// their Go regexp, which gives the positions:
//
//   - rules with required literals (see literals.go): one Aho-Corasick
//     automaton runs once over the text and names the rules whose literals
//     occur;
//   - rules without (most PII: cards, phone numbers, IBANs): one RE2 Set, a
//     lazy DFA over all of them at once (github.com/wasilibs/go-re2, pure
//     Go), says which of them match anywhere. If the Set cannot answer (its
//     DFA ran out of memory, or the text is not valid UTF-8), all of them
//     run: an engine error never means "no match".
//
// The findings are exactly those of running every rule; a differential fuzz
// test checks it.
type Set struct {
	rules  []compiled
	ac     *acMatcher        // nil when no rule has literals
	dfa    *experimental.Set // literal-free rules; nil when there are none
	dfaIdx []int             // DFA pattern index → rule index
	always []int             // literal-free rules the DFA cannot take: they run on every text
	macKey []byte            // see WithMACKey
}

// WithMACKey returns a Set that fingerprints every matched value: Match.MAC
// is the hex HMAC-SHA256, under key, of the value with spaces and dashes
// removed (so 4111 1111 1111 1111 and 4111-1111-1111-1111 are one value).
// The fingerprint lets an admin allowlist a value without anyone storing it;
// without the key it cannot be reversed, not even for a card number.
func (s *Set) WithMACKey(key []byte) *Set {
	c := *s
	c.macKey = key
	return &c
}

// fingerprint returns the keyed fingerprint of a value.
func fingerprint(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(CanonicalValue(value)))
	return hex.EncodeToString(m.Sum(nil))
}

// CanonicalValue is a matched value with spaces, dashes, tabs and line
// breaks removed: what identifies it, so that 4111 1111 1111 1111 and
// 4111-1111-1111-1111 are one value (for fingerprints and de-duplication).
func CanonicalValue(v string) string {
	if !strings.ContainsAny(v, " -\t\n\r") {
		return v
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ { // bytes, not runes: invalid UTF-8 stays as it is
		if c := v[i]; c != ' ' && c != '-' && c != '\t' && c != '\n' && c != '\r' {
			b = append(b, c)
		}
	}
	return string(b)
}

// Compile builds a Set from rules. A rule that does not compile is left out
// and reported as a *PatternError in errs; the Set holds all the others.
func Compile(rules []Rule) (set *Set, errs []error) {
	set = &Set{rules: make([]compiled, 0, len(rules))}
	var lits []string
	var ids []int32
	var literalFree []int
	total := 0
	for _, r := range rules {
		re, tree, cost, err := compileSized(r.Pattern)
		if err == nil && len(r.AllowPatterns)+len(r.Allowlists) > 0 {
			var more int
			more, err = allowCost(r)
			cost += more
		}
		if err == nil && total+cost > MaxSetProgram {
			err = SetTooLargeError(total + cost)
		}
		if err != nil {
			errs = append(errs, &PatternError{ID: r.ID, Pattern: r.Pattern, Err: err})
			continue
		}
		ch, err := compileChecks(r, re)
		if err != nil {
			errs = append(errs, &PatternError{ID: r.ID, Pattern: r.Pattern, Err: err})
			continue
		}
		total += cost
		i := len(set.rules)
		set.rules = append(set.rules, compiled{Rule: r, re: re, checks: ch, long: &longForm{}})
		req := requiredLiterals(tree)
		if req == nil {
			literalFree = append(literalFree, i)
			continue
		}
		for _, l := range req {
			lits = append(lits, l)
			ids = append(ids, int32(i))
		}
	}
	if len(lits) > 0 {
		set.ac = newACMatcher(lits, ids)
	}
	set.buildDFA(literalFree)
	return set, errs
}

// SetTooLargeError says that a set would cost total instructions, over
// MaxSetProgram. It matches ErrSetTooLarge.
func SetTooLargeError(total int) error {
	return fmt.Errorf("%w: the rule set would compile to %d instructions with it, the limit is %d (remove or disable rules you do not need)",
		ErrSetTooLarge, total, MaxSetProgram)
}

// setDFAMemory bounds what the RE2 Set may hold: its program and the lazy
// DFA's state cache, which fills as it meets text it has not seen. go-re2's
// default (128 MiB) let the cache grow for as long as the daemon ran (about
// 0.5 MB per 100,000 realistic messages with 1,000 rules, in WebAssembly
// memory that is never given back). At 2 MiB the cache is full within the
// first few thousand messages and RE2 resets it when it must; a soak of a
// million messages saw no DFA failure and no change in speed. Should the
// DFA fail, every literal-free rule runs with Go: slower, never a miss.
const setDFAMemory = 2 << 20

// buildDFA puts the literal-free rules RE2 can take into one RE2 Set. A rule
// using Unicode classes (\p{…}) stays out, since RE2's Unicode tables may
// differ from Go's; so does one RE2 refuses.
func (s *Set) buildDFA(idx []int) {
	var exprs []string
	for _, i := range idx {
		expr := s.rules[i].re.String()
		if strings.Contains(expr, `\p`) || strings.Contains(expr, `\P`) {
			s.always = append(s.always, i)
			continue
		}
		exprs = append(exprs, expr)
		s.dfaIdx = append(s.dfaIdx, i)
	}
	if len(exprs) == 0 {
		return
	}
	setOptions := experimental.CompileOptions{MaxMem: setDFAMemory}
	dfa, err := experimental.CompileSetWithOptions(exprs, setOptions)
	if err != nil {
		// Find the patterns RE2 refuses and leave them to Go alone.
		var okExprs []string
		var okIdx []int
		for k, e := range exprs {
			if _, err := experimental.CompileSetWithOptions([]string{e}, setOptions); err != nil {
				s.always = append(s.always, s.dfaIdx[k])
				continue
			}
			okExprs = append(okExprs, e)
			okIdx = append(okIdx, s.dfaIdx[k])
		}
		s.dfaIdx = okIdx
		if len(okExprs) == 0 {
			return
		}
		if dfa, err = experimental.CompileSetWithOptions(okExprs, setOptions); err != nil {
			s.always = append(s.always, okIdx...)
			s.dfaIdx = nil
			return
		}
	}
	s.dfa = dfa
}

// Len returns the number of rules in the set.
func (s *Set) Len() int { return len(s.rules) }

// Rules returns the rules in the set.
func (s *Set) Rules() []Rule {
	out := make([]Rule, len(s.rules))
	for i, r := range s.rules {
		out[i] = r.Rule
	}
	return out
}

// Scan normalises Slack message text and returns every match of every rule,
// by rule then position.
func (s *Set) Scan(text string) []Match {
	return s.ScanNormalized(Normalize(text))
}

// ScanNormalized is Scan for text that is normalised already.
func (s *Set) ScanNormalized(text string) []Match {
	if len(s.rules) == 0 {
		return nil
	}
	cand := make([]bool, len(s.rules))
	for _, i := range s.always {
		cand[i] = true
	}
	if s.ac != nil {
		s.ac.scan(foldSpecial(text), func(id int32) { cand[id] = true })
	}
	if s.dfa != nil {
		hits, err := []int(nil), errInvalidUTF8
		if utf8.ValidString(text) {
			hits, err = s.dfa.FindAllStringWithError(text, -1)
		}
		if err != nil {
			for _, i := range s.dfaIdx {
				cand[i] = true
			}
		} else {
			for _, k := range hits {
				cand[s.dfaIdx[k]] = true
			}
		}
	}
	var out []Match
	st := &scanText{text: text}
	for i := range s.rules {
		if cand[i] {
			out = s.rules[i].appendMatches(out, st)
		}
	}
	if s.macKey != nil {
		for i := range out {
			out[i].MAC = fingerprint(s.macKey, text[out[i].Start:out[i].End])
		}
	}
	return out
}

// foldSpecial maps the two non-ASCII runes that (?i) folds to ASCII letters,
// U+017F (ſ) to s and U+212A (Kelvin sign) to k, so that the prefilter sees
// "paſsword" as "password", as the regexp does.
func foldSpecial(text string) string {
	if !strings.Contains(text, "\u017f") && !strings.Contains(text, "\u212a") {
		return text
	}
	return strings.NewReplacer("\u017f", "s", "\u212a", "k").Replace(text)
}

// scanText is a message being scanned, with its lowercased form computed
// at most once, for the rules with keywords.
type scanText struct {
	text  string
	lower string
	done  bool
	utf8  int8 // 0 unknown, 1 valid, -1 not
	// goOnly runs every rule with Go's regexp: the reference the tests
	// and benchmarks compare with.
	goOnly bool
	// newlines holds the offsets of the text's newlines (nil: not found yet).
	newlines []int
}

// validUTF8 reports, computed once, whether the text is valid UTF-8: RE2
// stops at invalid bytes, Go's regexp reads past them.
func (t *scanText) validUTF8() bool {
	if t.utf8 == 0 {
		t.utf8 = -1
		if utf8.ValidString(t.text) {
			t.utf8 = 1
		}
	}
	return t.utf8 == 1
}

// line returns the bounds of the line holding text[mstart:mend] (a match
// may span lines: from the start of its first to the end of its last),
// from newline offsets found once per text.
func (t *scanText) line(mstart, mend int) (int, int) {
	if t.newlines == nil {
		t.newlines = []int{}
		for i := 0; ; {
			j := strings.IndexByte(t.text[i:], '\n')
			if j < 0 {
				break
			}
			t.newlines = append(t.newlines, i+j)
			i += j + 1
		}
	}
	// The first newline at or after mstart... the one before it ends the
	// previous line.
	k, _ := slices.BinarySearch(t.newlines, mstart)
	ls := 0
	if k > 0 {
		ls = t.newlines[k-1] + 1
	}
	le := len(t.text)
	if k2, _ := slices.BinarySearch(t.newlines, mend); k2 < len(t.newlines) {
		le = t.newlines[k2]
	}
	return ls, le
}

func (t *scanText) lowered() string {
	if !t.done {
		t.lower, t.done = strings.ToLower(t.text), true
	}
	return t.lower
}

func (r *compiled) appendMatches(out []Match, st *scanText) []Match {
	text := st.text
	re := r.finder(st)
	if r.checks == nil {
		for _, loc := range re.FindAllStringIndex(text, -1) {
			out = append(out, r.match(text, loc[0], loc[1]))
		}
		return out
	}
	if len(r.checks.keywords) > 0 && !containsAny(st.lowered(), r.checks.keywords) {
		return out
	}
	var locs [][]int
	if r.SecretGroup != 0 {
		locs = re.FindAllStringSubmatchIndex(text, -1)
	} else {
		locs = re.FindAllStringIndex(text, -1)
	}
	var lines lineVerdicts
	for _, loc := range locs {
		start, end := loc[0], loc[1]
		if g := r.SecretGroup; g > 0 && loc[2*g] >= 0 {
			start, end = loc[2*g], loc[2*g+1]
		} else if g == FirstGroup {
			for k := 1; 2*k+1 < len(loc); k++ {
				if loc[2*k] >= 0 && loc[2*k] < loc[2*k+1] {
					start, end = loc[2*k], loc[2*k+1]
					break
				}
			}
		}
		if start == end || !r.checks.keep(&r.Rule, st, start, end, loc[0], loc[1], &lines) {
			continue
		}
		out = append(out, r.match(text, start, end))
	}
	return out
}

func (r *compiled) match(text string, start, end int) Match {
	return Match{RuleID: r.ID, Description: r.Description, Start: start, End: end, Excerpt: Mask(text[start:end])}
}

// containsAny reports whether the lowercased text contains one of the
// lowercased words.
func containsAny(lower string, words []string) bool {
	for _, w := range words {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}
