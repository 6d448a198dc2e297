package detect

// The baselines the differential tests and benchmarks compare the engine
// with. They live in a test file: the product never scans this way.

// scanAll runs every rule on the text: the reference the prefiltered scan
// must equal, and the naive baseline of the benchmarks.
func (s *Set) scanAll(text string) []Match {
	var out []Match
	st := &scanText{text: text, goOnly: true}
	for i := range s.rules {
		out = s.rules[i].appendMatches(out, st)
	}
	return out
}

// scanKeywords is the gitleaks-style scan, the peer the benchmarks compare
// with: the literal prefilter alone, every literal-free rule run by Go.
func (s *Set) scanKeywords(text string) []Match {
	cand := make([]bool, len(s.rules))
	for _, i := range s.always {
		cand[i] = true
	}
	for _, i := range s.dfaIdx {
		cand[i] = true
	}
	if s.ac != nil {
		s.ac.scan(foldSpecial(text), func(id int32) { cand[id] = true })
	}
	var out []Match
	st := &scanText{text: text, goOnly: true}
	for i := range s.rules {
		if cand[i] {
			out = s.rules[i].appendMatches(out, st)
		}
	}
	return out
}
