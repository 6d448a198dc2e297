package slackapi

import "testing"

// TestClaimOutlastsTheCall: a claimed deletion or notification must not be
// claimable by another daemon while its call and outcome write may still be
// running.
func TestClaimOutlastsTheCall(t *testing.T) {
	if worst := CallTimeout + WriteTimeout; ClaimLease < worst+worst/2 {
		t.Errorf("claim lease %s is within 50%% of the worst case of a call and its write (%s)", ClaimLease, worst)
	}
}
