package corpus

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// GeneratedRules returns n deterministic rule variants of the shapes admins
// add on top of a standard pack: vendor token prefixes, (?i) keyword
// assignments, project codenames, internal URLs and ID formats, about 3% of
// them with no literal at all (like most PII rules). With a base of 100
// rules, GeneratedRules(900, seed) makes the 1,000-rule benchmark set.
func GeneratedRules(n int, seed uint64) []string {
	rnd := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	syll := []string{"ka", "zu", "mi", "ro", "te", "vo", "la", "qi", "ne", "xo", "bu", "fa", "gy", "ho", "ju", "pe", "su", "wy", "da", "ri"}
	name := func(k int) string {
		var b strings.Builder
		for range k {
			b.WriteString(syll[rnd.IntN(len(syll))])
		}
		return b.String()
	}
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		var p string
		switch r := rnd.IntN(100); {
		case r < 3:
			p = fmt.Sprintf(`\b[0-9]{%d}[- ][0-9]{%d}[- ][A-Z]{%d}[0-9]{%d}\b`, 3+rnd.IntN(4), 2+rnd.IntN(4), 1+rnd.IntN(3), 1+rnd.IntN(3))
		case r < 30:
			p = fmt.Sprintf(`%s_%s[A-Za-z0-9]{%d}`, name(2), []string{"", "live_", "test_", "prod_"}[rnd.IntN(4)], 20+rnd.IntN(30))
		case r < 55:
			p = fmt.Sprintf(`(?i)(?:%s|%s)[_.-]?(?:api[_.-]?)?(?:key|token|secret)\s*[:=]\s*["']?[A-Za-z0-9/+]{%d,%d}`, name(2), name(3), 16+rnd.IntN(8), 40+rnd.IntN(24))
		case r < 70:
			p = fmt.Sprintf(`(?i)\b(?:project|codename|initiative)[ :_-]+%s\b`, name(3))
		case r < 85:
			p = fmt.Sprintf(`https?://%s\.(?:internal|corp)\.acme\.io/[\w/.-]*`, name(2))
		default:
			p = fmt.Sprintf(`\b%s-[0-9]{%d,%d}\b`, strings.ToUpper(name(1+rnd.IntN(2))), 5+rnd.IntN(2), 8+rnd.IntN(3))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
