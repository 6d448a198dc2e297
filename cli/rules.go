package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/store"
)

// loadSnapshot loads the rules in force, with the allowlist, exactly as the
// daemon does. A stored pattern that no longer compiles is reported on stderr
// and skipped; no usable pattern at all is an error, since a check with no
// rules would pass everything.
func (a *app) loadSnapshot(ctx context.Context, s *store.Store) (*ruleset.Snapshot, error) {
	snap, err := ruleset.Load(ctx, s, allowKey(a.cfg.Allowlist.Secret))
	if err != nil {
		return nil, err
	}
	for _, err := range snap.Skipped {
		fmt.Fprintf(a.Stderr, "warning: skipping %v\n", err)
	}
	if snap.Set.Len() == 0 {
		return nil, errors.New("no enabled regex compiles, so nothing can be checked: add one with 'securechat regex add PATTERN' or --builtin NAME")
	}
	return snap, nil
}
