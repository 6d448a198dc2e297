package slackapi

import "time"

// The timings of the workers that call Slack for a claimed item (the
// deleter's chat.delete, the notifier's posts), shared so that a claim
// always outlasts its call and the write of its outcome.
const (
	IdlePoll     = 5 * time.Second  // looks for work queued by another process
	CallTimeout  = 15 * time.Second // one Web API call
	WriteTimeout = 5 * time.Second  // recording one outcome, or a round of them
	// ClaimLease is how long a claimed deletion or notification belongs to
	// the daemon that claimed it: twice the worst case of its call and the
	// write of its outcome, so that no other daemon can take it while it is
	// still in flight.
	ClaimLease = 2 * (CallTimeout + WriteTimeout)
	// MinRateLimitWait is the shortest wait after a 429, even with
	// Retry-After: 0, so that no loop spins against Slack.
	MinRateLimitWait = time.Second
)

// DefaultAPIURL is Slack's Web API base URL.
const DefaultAPIURL = "https://slack.com/api/"
