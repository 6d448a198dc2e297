package store

import "context"

// RecoverDeletionClaimsForTest exposes recoverDeletionClaims to the
// conformance tests.
func RecoverDeletionClaimsForTest(s *Store, ctx context.Context, ids []int64, token string) ([]Claim, bool) {
	return s.recoverDeletionClaims(ctx, ids, token)
}
