// Package detect finds secrets in Slack messages: it normalises Slack's
// escaped, auto-linked text, runs a compiled, immutable set of rules over it
// and reports each match with its position and a masked excerpt. The matched
// text itself never leaves this package.
package detect

import "regexp"

// Match is one finding in a normalised message.
type Match struct {
	RuleID      int64  `json:"regex_id"`
	Description string `json:"description"`
	Start       int    `json:"start"` // byte offsets in the normalised text
	End         int    `json:"end"`
	Excerpt     string `json:"excerpt"` // masked
}

type compiled struct {
	Rule
	re *regexp.Regexp
}

// Set is an immutable compiled rule set. It is safe for concurrent use by
// any number of goroutines; to change the rules, compile a new Set and swap it.
type Set struct {
	rules []compiled
}

// Compile builds a Set from rules. A rule that does not compile is left out
// and reported as a *PatternError in errs; the Set holds all the others.
func Compile(rules []Rule) (set *Set, errs []error) {
	set = &Set{rules: make([]compiled, 0, len(rules))}
	for _, r := range rules {
		re, err := compilePattern(r.Pattern)
		if err != nil {
			errs = append(errs, &PatternError{ID: r.ID, Pattern: r.Pattern, Err: err})
			continue
		}
		set.rules = append(set.rules, compiled{Rule: r, re: re})
	}
	return set, errs
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
	var out []Match
	for _, r := range s.rules {
		for _, loc := range r.re.FindAllStringIndex(text, -1) {
			out = append(out, Match{
				RuleID:      r.ID,
				Description: r.Description,
				Start:       loc[0],
				End:         loc[1],
				Excerpt:     Mask(text[loc[0]:loc[1]]),
			})
		}
	}
	return out
}
