package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

// loadRuleSet compiles the enabled regexes. A stored pattern that no longer
// compiles is reported on stderr and skipped; no usable pattern at all is an
// error, since a check with no rules would pass everything.
func loadRuleSet(cmd *cobra.Command, a *app, s *store.Store) (*detect.Set, error) {
	rs, err := s.Regexes(cmd.Context())
	if err != nil {
		return nil, err
	}
	set, errs := bot.CompileRules(rs)
	for _, err := range errs {
		fmt.Fprintf(a.Stderr, "warning: skipping %v\n", err)
	}
	if set.Len() == 0 {
		return nil, errors.New("no enabled regex compiles, so nothing can be checked: add one with 'securechat regex add PATTERN' or --builtin NAME")
	}
	return set, nil
}
