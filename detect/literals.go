package detect

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"
)

// Literal extraction: for a parsed pattern, find a small set of strings one
// of which every match must contain. The prefilter looks for those strings
// (ASCII-lowercased, so it also serves (?i) patterns) and runs only the
// patterns whose strings occur. A wrong answer here would lose matches, so
// every rule is conservative: "don't know" is always a safe answer.

const (
	maxLitSet  = 64 // strings in one set before it is given up
	minLitLen  = 3  // shorter required strings select too many messages
	maxLitLen  = 64 // longer strings are cut (a prefix is still required)
	maxClassSz = 8  // character classes up to this size are expanded
)

// litInfo describes what a sub-expression matches.
type litInfo struct {
	// exact is every string the node can match, lowercased, when that set
	// is finite and small; nil when unknown.
	exact []string
	// req is a set one of which every match contains; nil when unknown.
	req []string
	// prefix is a set one of which every match starts with; nil when
	// unknown.
	prefix []string
}

// requiredLiterals returns lowercased strings one of which occurs in every
// match of re (after ASCII lowercasing of the text, and with U+017F and
// U+212A mapped to s and k), or nil when no such set of useful strings is
// known.
//
// A literal holding U+FFFD is no prefilter: Go's regexp reads every invalid
// UTF-8 byte of the text as U+FFFD, which a byte search for its encoding
// would miss; such a rule is left to the literal-free path.
func requiredLiterals(re *syntax.Regexp) []string {
	info := analyze(re)
	best := pick(info.exact, info.req)
	if score(best) < minLitLen {
		return nil
	}
	for _, l := range best {
		if strings.ContainsRune(l, utf8.RuneError) {
			return nil
		}
	}
	return dedup(best)
}

func analyze(re *syntax.Regexp) litInfo {
	switch re.Op {
	case syntax.OpLiteral:
		return literal(re)
	case syntax.OpCharClass:
		if set := classSet(re); set != nil {
			return litInfo{exact: set, req: set, prefix: set}
		}
		return litInfo{}
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return litInfo{exact: []string{""}, prefix: []string{""}}
	case syntax.OpCapture:
		return analyze(re.Sub[0])
	case syntax.OpConcat:
		return concat(re.Sub)
	case syntax.OpAlternate:
		return alternate(re.Sub)
	case syntax.OpQuest:
		sub := analyze(re.Sub[0])
		var info litInfo
		if sub.exact != nil && len(sub.exact) < maxLitSet {
			info.exact = append(slices.Clone(sub.exact), "")
		}
		if sub.prefix != nil && len(sub.prefix) < maxLitSet {
			info.prefix = append(slices.Clone(sub.prefix), "")
		}
		return info
	case syntax.OpPlus:
		sub := analyze(re.Sub[0])
		return litInfo{req: pick(sub.exact, sub.req), prefix: sub.prefix}
	case syntax.OpRepeat:
		if re.Min == 0 {
			return litInfo{}
		}
		sub := analyze(re.Sub[0])
		info := litInfo{req: pick(sub.exact, sub.req), prefix: sub.prefix}
		if re.Min == re.Max && sub.exact != nil {
			exact := []string{""}
			for range re.Min {
				if exact = product(exact, sub.exact); exact == nil {
					break
				}
			}
			info.exact = exact
		}
		return info
	}
	return litInfo{} // OpAnyChar, OpAnyCharNotNL, OpStar, OpNoMatch
}

// literal lowercases a literal's ASCII letters. Under (?i) a non-ASCII rune
// may fold to forms of other byte lengths, so it ends the known string: the
// longest ASCII run is then the requirement. U+017F and U+212A become s and
// k, as they do in the text the prefilter scans.
func literal(re *syntax.Regexp) litInfo {
	fold := re.Flags&syntax.FoldCase != 0
	var runs []string
	var cur []byte
	for _, r := range re.Rune {
		switch r {
		case '\u017f':
			r = 's'
		case '\u212a':
			r = 'k'
		}
		switch {
		case r < utf8.RuneSelf:
			cur = append(cur, lowerASCII(byte(r)))
		case fold:
			runs = append(runs, string(cur))
			cur = cur[:0]
		default:
			cur = utf8.AppendRune(cur, r)
		}
	}
	if len(runs) == 0 {
		s := string(cur)
		return litInfo{exact: []string{s}, req: []string{s}, prefix: []string{s}}
	}
	runs = append(runs, string(cur))
	longest := ""
	for _, r := range runs {
		if len(r) > len(longest) {
			longest = r
		}
	}
	return litInfo{req: []string{longest}, prefix: []string{runs[0]}}
}

// classSet expands a small ASCII class, lowercased: [baprs] → b a p r s.
func classSet(re *syntax.Regexp) []string {
	var out []string
	n := 0
	for i := 0; i+1 < len(re.Rune); i += 2 {
		lo, hi := re.Rune[i], re.Rune[i+1]
		if hi >= utf8.RuneSelf {
			return nil
		}
		n += int(hi-lo) + 1
		if n > 2*maxClassSz { // upper and lower case of 8 letters
			return nil
		}
		for r := lo; r <= hi; r++ {
			out = append(out, string([]byte{lowerASCII(byte(r))}))
		}
	}
	out = dedup(out)
	if len(out) == 0 || len(out) > maxClassSz {
		return nil
	}
	return out
}

// concat joins runs of exactly known children into products
// ("xox" [bp] "-" → xoxb-, xoxp-), extends a run with the prefixes of the
// child that ends it ("a" (3t|kia) → a3t, akia), and keeps the best
// requirement seen.
func concat(subs []*syntax.Regexp) litInfo {
	cur := []string{""} // product of the current run of exact children
	leading := true     // cur is a prefix of every match
	allExact := true
	var best, prefix []string
	for _, s := range subs {
		info := analyze(s)
		if info.exact != nil {
			if p := product(cur, info.exact); p != nil {
				cur = p
				continue
			}
		}
		// The run ends here: it, the run extended by this child's
		// prefixes, and this child's own requirement are candidates.
		ext := product(cur, info.prefix)
		if leading {
			if ext == nil {
				prefix = cur
			} else {
				prefix = ext
			}
			leading = false
		}
		best = pick(best, cur)
		best = pick(best, ext)
		best = pick(best, info.req)
		allExact = false
		if info.exact != nil {
			cur = info.exact
		} else {
			cur = []string{""}
		}
	}
	best = pick(best, cur)
	if allExact {
		return litInfo{exact: cur, req: best, prefix: cur}
	}
	return litInfo{req: best, prefix: prefix}
}

// alternate: a match comes from one branch, so each set is the union of
// every branch's set, known only if every branch has one.
func alternate(subs []*syntax.Regexp) litInfo {
	var exact, req, prefix []string
	exactOK, reqOK, prefixOK := true, true, true
	union := func(ok *bool, acc *[]string, set []string) {
		if *ok && set != nil && len(*acc)+len(set) <= maxLitSet {
			*acc = append(*acc, set...)
		} else {
			*ok = false
		}
	}
	for _, s := range subs {
		info := analyze(s)
		union(&exactOK, &exact, info.exact)
		union(&reqOK, &req, pick(info.exact, info.req))
		union(&prefixOK, &prefix, info.prefix)
	}
	var info litInfo
	if exactOK {
		info.exact = dedup(exact)
	}
	if reqOK {
		info.req = dedup(req)
	}
	if prefixOK {
		info.prefix = dedup(prefix)
	}
	return info
}

// product returns every a+b, cut to maxLitLen, or nil when too many.
func product(as, bs []string) []string {
	if len(as) == 0 || len(bs) == 0 || len(as)*len(bs) > maxLitSet {
		return nil
	}
	out := make([]string, 0, len(as)*len(bs))
	for _, a := range as {
		for _, b := range bs {
			s := a + b
			if len(s) > maxLitLen {
				s = s[:maxLitLen]
			}
			out = append(out, s)
		}
	}
	return dedup(out)
}

// score is how selective a set is: the length of its shortest string (the
// prefilter is only as good as its weakest alternative). nil scores -1.
func score(set []string) int {
	if len(set) == 0 {
		return -1
	}
	m := maxLitLen + 1
	for _, s := range set {
		m = min(m, len(s))
	}
	return m
}

// pick returns the better of two requirement sets: the higher score, then
// the smaller set.
func pick(a, b []string) []string {
	sa, sb := score(a), score(b)
	switch {
	case sa > sb:
		return a
	case sb > sa:
		return b
	case len(b) < len(a):
		return b
	}
	return a
}

func dedup(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}
