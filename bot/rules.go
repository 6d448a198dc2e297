package bot

import (
	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

// CompileRules compiles the enabled regexes, with their checks, into a rule
// set. Regexes that do not compile are left out and reported as
// *detect.PatternError values.
func CompileRules(rs []store.Regex) (*detect.Set, []error) {
	rules := make([]detect.Rule, 0, len(rs))
	for _, r := range rs {
		if !r.Enabled {
			continue
		}
		rules = append(rules, detect.Rule{
			ID: r.ID, Pattern: r.Pattern, Description: r.Description,
			Validator: r.Validator, SecretGroup: r.SecretGroup, Entropy: r.Entropy,
			Keywords: r.Keywords, AllowPatterns: r.AllowPatterns, Stopwords: r.Stopwords,
		})
	}
	return detect.Compile(rules)
}
