package detect

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// MaxPatternLen bounds a pattern's length; longer input is almost certainly a
// paste gone wrong.
const MaxPatternLen = 4096

// MaxProgram bounds one rule's cost: the instructions of the program Go's
// regexp runs for its pattern, and for each of its allow patterns. Matching
// time grows with it (a 40 KB message costs about 0.5 ms per instruction in
// the worst case on a 2-core machine with Go's regexp; RE2 takes over on
// long texts), and counted repeats are what make it large:
// [A-Za-z0-9+/]{1000} alone is 1,002. gitleaks v8.30.1's default rules fit:
// its keyword-assignment template compiles to about 260, and the largest,
// pypi-upload-token with its {50,1000}, to 1,972.
const MaxProgram = 2000

// MaxSetProgram bounds the instructions of a whole rule set. It admits
// gitleaks v8.30.1's default configuration (221 rules usable in chat, about
// 102,000) and the 1,000-rule benchmark set (about 64,000 with the
// builtins). The worst message for a set is one that holds every rule's
// literal: BenchmarkWorstCase40KB measures it.
const MaxSetProgram = 150_000

// ErrTooLarge is returned for a rule, or an allow pattern, whose program is
// over MaxProgram.
var ErrTooLarge = errors.New("too costly to match")

// ErrSetTooLarge is returned for a rule that would take a set past
// MaxSetProgram.
var ErrSetTooLarge = errors.New("the rule set is full")

// ErrMatchesEmpty is returned for a pattern that can match the empty string,
// such as `.*` or `a?`: it would flag, and so delete, every message.
var ErrMatchesEmpty = errors.New("it can match the empty string, so it would flag every message; " +
	"make it match only what the secret looks like (a prefix, a length: 'AKIA[A-Z2-7]{16}'), not just any text")

// PatternError says which pattern did not compile and why. Its Err is a
// *syntax.Error, ErrMatchesEmpty or another validation error.
type PatternError struct {
	ID      int64 // the rule's id, 0 when not stored yet
	Pattern string
	Err     error
}

func (e *PatternError) Error() string {
	who := "pattern"
	if e.ID != 0 {
		who = fmt.Sprintf("regex %d", e.ID)
	}
	return fmt.Sprintf("%s %q is not usable: %s", who, Shorten(e.Pattern, 80), describe(e.Err))
}

// Shorten returns s cut to at most n runes, with "…" where it was cut, for
// long patterns in messages.
func Shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// programSize is the number of instructions Go's regexp compiles tree to.
func programSize(tree *syntax.Regexp) (int, error) {
	prog, err := syntax.Compile(tree.Simplify())
	if err != nil {
		return 0, err
	}
	return len(prog.Inst), nil
}

// checkSize refuses a program over MaxProgram.
func checkSize(what string, tree *syntax.Regexp) (int, error) {
	n, err := programSize(tree)
	if err != nil {
		return 0, err
	}
	if n > MaxProgram {
		return n, fmt.Errorf("%w: %s compiles to %d instructions, the limit is %d (large counted repeats such as {1000} are the usual cause: use a smaller bound, or + with a required prefix)",
			ErrTooLarge, what, n, MaxProgram)
	}
	return n, nil
}

// Cost returns a rule's program size: its pattern's instructions and its
// allow patterns'. It returns a *PatternError for a rule Compile refuses.
func Cost(r Rule) (int, error) {
	_, _, n, err := compileSized(r.Pattern)
	if err != nil {
		return 0, &PatternError{ID: r.ID, Pattern: r.Pattern, Err: err}
	}
	m, err := allowCost(r)
	if err != nil {
		return 0, &PatternError{ID: r.ID, Pattern: r.Pattern, Err: err}
	}
	return n + m, nil
}

// allowCost is the program size of a rule's allow patterns.
func allowCost(r Rule) (int, error) {
	n := 0
	patterns := slices.Clone(r.AllowPatterns)
	for _, al := range r.Allowlists {
		patterns = append(patterns, al.Regexes...)
	}
	for _, p := range patterns {
		t, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			return 0, fmt.Errorf("allow pattern %q: %s", Shorten(p, 60), describe(err))
		}
		m, err := programSize(t)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

func (e *PatternError) Unwrap() error { return e.Err }

// describe turns Go's regexp errors into a sentence with a hint.
func describe(err error) string {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return err.Error()
	}
	msg := fmt.Sprintf("%s at `%s`", se.Code, se.Expr)
	switch se.Code {
	case syntax.ErrInvalidPerlOp, syntax.ErrInvalidEscape, syntax.ErrInvalidNamedCapture, syntax.ErrMissingRepeatArgument:
		msg += " (patterns use Go's RE2 syntax: lookahead, lookbehind and backreferences are not supported)"
	case syntax.ErrInvalidRepeatSize:
		msg += " (a counted repeat may be at most {1000})"
	}
	return msg
}

// Rule is a stored pattern as the detector needs it, with the optional checks
// that drop matches which are not leaks.
type Rule struct {
	ID          int64
	Pattern     string
	Description string

	// Validator names a check of the secret: luhn, iban, us-ssn or jwt.
	Validator string
	// SecretGroup, when positive, is the capture group holding the secret;
	// the checks, offsets and excerpt use it instead of the whole match.
	// FirstGroup (-1) takes the first capture group that matched something,
	// as gitleaks does for a rule with groups and no secretGroup.
	SecretGroup int
	// Entropy, when positive, is the minimum Shannon entropy (bits per
	// byte) of the secret.
	Entropy float64
	// Keywords: when set, one of them must occur in the message (any case).
	Keywords []string
	// AllowPatterns: a secret matching one of them is not a leak.
	AllowPatterns []string
	// Stopwords: a secret containing one of them (any case) is not a leak.
	Stopwords []string
	// Allowlists are gitleaks-style allowlists: each says what its regexes
	// are matched against and whether all its parts must hold.
	Allowlists []Allowlist
}

// Allowlist targets: what an allowlist's regexes are matched against.
const (
	TargetSecret = "secret" // the secret (the default)
	TargetMatch  = "match"  // the whole match of the rule
	TargetLine   = "line"   // the line of the message that holds the match
)

// Allowlist drops a finding when its regexes match their target, or when the
// secret contains one of its stopwords (any case). With And, every part that
// is given must hold: a regex must match and a stopword must occur.
type Allowlist struct {
	Target    string   `json:"target,omitempty"` // TargetSecret ("") , TargetMatch or TargetLine
	Regexes   []string `json:"regexes,omitempty"`
	Stopwords []string `json:"stopwords,omitempty"`
	And       bool     `json:"and,omitempty"`
}

// allowlist is an Allowlist compiled.
type allowlist struct {
	target    string
	regexes   []*regexp.Regexp
	stopwords []string // lowercased
	and       bool
}

// allows reports whether the allowlist drops a finding.
func (a *allowlist) allows(secret, match, line string) bool {
	target := secret
	switch a.target {
	case TargetMatch:
		target = match
	case TargetLine:
		target = line
	}
	return a.decide(a.matchesAny(target), secret)
}

// matchesAny reports whether one of the allowlist's regexes matches target.
func (a *allowlist) matchesAny(target string) bool {
	for _, r := range a.regexes {
		if r.MatchString(target) {
			return true
		}
	}
	return false
}

// decide is the allowlist's verdict given whether its regexes matched
// their target (re).
func (a *allowlist) decide(re bool, secret string) bool {
	sw := false
	if len(a.stopwords) > 0 {
		lower := strings.ToLower(secret)
		for _, w := range a.stopwords {
			if strings.Contains(lower, w) {
				sw = true
				break
			}
		}
	}
	if a.and {
		return (len(a.regexes) == 0 || re) && (len(a.stopwords) == 0 || sw) && (len(a.regexes)+len(a.stopwords) > 0)
	}
	return re || sw
}

// compileAllowPattern compiles one allow regex within the cost limit.
func compileAllowPattern(p string) (*regexp.Regexp, error) {
	tree, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("allow pattern %q: %s", Shorten(p, 60), describe(err))
	}
	if _, err := checkSize(fmt.Sprintf("allow pattern %q", Shorten(p, 60)), tree); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("allow pattern %q: %s", Shorten(p, 60), describe(err))
	}
	return re, nil
}

// FirstGroup as a Rule's SecretGroup takes the first capture group that
// matched a non-empty string as the secret (the whole match when none did).
const FirstGroup = -1

// checks is what a compiled rule does after its regexp matched.
type checks struct {
	validator  Validator
	allow      []*regexp.Regexp
	allowlists []allowlist
	keywords   []string // lowercased
	stopwords  []string // lowercased
}

// compileChecks validates a rule's checks against its compiled regexp.
func compileChecks(r Rule, re *regexp.Regexp) (*checks, error) {
	if r.Validator == "" && r.SecretGroup == 0 && r.Entropy == 0 && len(r.Keywords) == 0 &&
		len(r.AllowPatterns) == 0 && len(r.Stopwords) == 0 && len(r.Allowlists) == 0 {
		return nil, nil
	}
	c := &checks{}
	if r.Validator != "" {
		v, ok := validators[r.Validator]
		if !ok {
			return nil, fmt.Errorf("unknown validator %q (known: %s)", r.Validator, strings.Join(ValidatorNames(), ", "))
		}
		c.validator = v
	}
	if r.SecretGroup < FirstGroup || r.SecretGroup > re.NumSubexp() {
		return nil, fmt.Errorf("secret group %d does not exist: the pattern has %d capture group(s)", r.SecretGroup, re.NumSubexp())
	}
	if r.Entropy < 0 || r.Entropy > 8 {
		return nil, fmt.Errorf("entropy %.2f is outside 0 to 8 bits per byte", r.Entropy)
	}
	for _, p := range r.AllowPatterns {
		are, err := compileAllowPattern(p)
		if err != nil {
			return nil, err
		}
		c.allow = append(c.allow, are)
	}
	for _, al := range r.Allowlists {
		switch al.Target {
		case "", TargetSecret, TargetMatch, TargetLine:
		default:
			return nil, fmt.Errorf("allowlist target %q: use secret, match or line", al.Target)
		}
		ca := allowlist{target: al.Target, and: al.And}
		for _, p := range al.Regexes {
			are, err := compileAllowPattern(p)
			if err != nil {
				return nil, err
			}
			ca.regexes = append(ca.regexes, are)
		}
		for _, w := range al.Stopwords {
			if w = strings.ToLower(strings.TrimSpace(w)); w != "" {
				ca.stopwords = append(ca.stopwords, w)
			}
		}
		c.allowlists = append(c.allowlists, ca)
	}
	for _, k := range r.Keywords {
		if k = strings.ToLower(strings.TrimSpace(k)); k != "" {
			c.keywords = append(c.keywords, k)
		}
	}
	for _, w := range r.Stopwords {
		if w = strings.ToLower(strings.TrimSpace(w)); w != "" {
			c.stopwords = append(c.stopwords, w)
		}
	}
	return c, nil
}

// lineVerdicts caches, for one rule's scan of one text, what each
// line-target allowlist said of each line (keyed by the allowlist and the
// line's start): a line is weighed once per allowlist however many matches
// it holds, so the work per message stays linear in its length. Without
// it, a 40 KB line of a thousand matches ran each line allowlist a
// thousand times over the whole line.
type lineVerdicts map[[2]int]bool

// keep reports whether a finding passes the checks: text[start:end] is the
// secret, text[mstart:mend] the rule's whole match.
func (c *checks) keep(r *Rule, st *scanText, start, end, mstart, mend int, lines *lineVerdicts) bool {
	text := st.text
	secret := text[start:end]
	if c.validator != nil && !c.validator(secret) {
		return false
	}
	if r.Entropy > 0 && entropy(secret) <= r.Entropy { // at the threshold is not enough, as in gitleaks
		return false
	}
	for _, a := range c.allow {
		if a.MatchString(secret) {
			return false
		}
	}
	if len(c.stopwords) > 0 {
		lower := strings.ToLower(secret)
		for _, w := range c.stopwords {
			if strings.Contains(lower, w) {
				return false
			}
		}
	}
	if len(c.allowlists) > 0 {
		match := text[mstart:mend]
		ls, le := st.line(mstart, mend)
		for i := range c.allowlists {
			a := &c.allowlists[i]
			if a.target != TargetLine {
				if a.allows(secret, match, "") {
					return false
				}
				continue
			}
			// A line allowlist's regexes see only the line, so their part of
			// the verdict is the line's; the stopwords see the secret.
			key := [2]int{i, ls}
			lineRe, seen := (*lines)[key]
			if !seen {
				lineRe = a.matchesAny(text[ls:le])
				if *lines == nil {
					*lines = lineVerdicts{} // made only for a rule with a line allowlist and a match
				}
				(*lines)[key] = lineRe
			}
			if a.decide(lineRe, secret) {
				return false
			}
		}
	}
	return true
}

// Validate checks that a pattern compiles with Go's regexp (RE2 syntax) and
// cannot match the empty string. It returns a *PatternError.
func Validate(pattern string) error {
	_, _, err := compilePattern(pattern)
	if err != nil {
		return &PatternError{Pattern: pattern, Err: err}
	}
	return nil
}

// compilePattern validates a pattern and compiles the form used for matching:
// leading and trailing `.*` are stripped, since they change which text a match
// covers (the whole line instead of the card number) but never whether a
// message matches. It also returns the parsed tree of that form.
func compilePattern(pattern string) (*regexp.Regexp, *syntax.Regexp, error) {
	re, tree, _, err := compileSized(pattern)
	return re, tree, err
}

// compileSized is compilePattern that also returns the program's size.
func compileSized(pattern string) (*regexp.Regexp, *syntax.Regexp, int, error) {
	if pattern == "" {
		return nil, nil, 0, errors.New("it is empty")
	}
	if len(pattern) > MaxPatternLen {
		return nil, nil, 0, fmt.Errorf("it is %d bytes long; the limit is %d", len(pattern), MaxPatternLen)
	}
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, nil, 0, err
	}
	if nullable(tree) {
		return nil, nil, 0, ErrMatchesEmpty
	}
	size, err := checkSize("the pattern", tree)
	if err != nil {
		return nil, nil, 0, err
	}
	expr := pattern
	if trimmed, ok := trimDotStars(tree); ok {
		tree = trimmed
		expr = trimmed.String()
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, nil, 0, err
	}
	return re, tree, size, nil
}

// nullable reports whether re can match an empty string somewhere. Assertions
// (^, $, \b…) count as empty, so `\b` alone is refused too.
func nullable(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return false
	case syntax.OpLiteral:
		return len(re.Rune) == 0
	case syntax.OpCapture, syntax.OpPlus:
		return nullable(re.Sub[0])
	case syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpRepeat:
		return re.Min == 0 || nullable(re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !nullable(s) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if nullable(s) {
				return true
			}
		}
		return false
	default: // OpEmptyMatch and the assertions
		return true
	}
}

// trimDotStars removes `.*` (and `.*?`) at the start and end of a top-level
// concatenation. The result matches the same messages; its matches cover only
// the part that matters.
func trimDotStars(re *syntax.Regexp) (*syntax.Regexp, bool) {
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 {
		return nil, false
	}
	subs := re.Sub
	for len(subs) > 1 && isDotStar(subs[0]) {
		subs = subs[1:]
	}
	for len(subs) > 1 && isDotStar(subs[len(subs)-1]) {
		subs = subs[:len(subs)-1]
	}
	if len(subs) == len(re.Sub) {
		return nil, false
	}
	out := *re
	out.Sub = subs
	if len(subs) == 1 {
		return subs[0], true
	}
	return &out, true
}

func isDotStar(re *syntax.Regexp) bool {
	return re.Op == syntax.OpStar && (re.Sub[0].Op == syntax.OpAnyCharNotNL || re.Sub[0].Op == syntax.OpAnyChar)
}

// NumGroups returns how many capture groups a pattern has, as the rule set
// compiles it. It returns a *PatternError for a pattern Validate refuses.
func NumGroups(pattern string) (int, error) {
	re, _, err := compilePattern(pattern)
	if err != nil {
		return 0, &PatternError{Pattern: pattern, Err: err}
	}
	return re.NumSubexp(), nil
}
