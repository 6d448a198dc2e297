package bot

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/slack-go/slack"
)

// What a Slack Web API answer means, decided here for every method: the
// deleter and the notifier act on an outcome and never look at errors.

// tokenCodes are Slack errors that mean the token itself is unusable.
var tokenCodes = []string{
	"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
	"not_allowed_token_type", "missing_scope", "no_permission", "team_access_not_granted",
	"ekm_access_denied", "invalid_token",
}

// terminalCodes are chat.delete answers that retrying cannot change.
var terminalCodes = []string{
	"message_not_found", "cant_delete_message", "channel_not_found", "compliance_exports_prevent_deletion",
	"not_in_channel", "is_archived", "restricted_action", "invalid_arguments", "invalid_ts",
}

// transientCodes are answers worth retrying.
var transientCodes = []string{"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}

// maxUnknownTries bounds the attempts at answers we do not recognise, and at
// a notification.
const maxUnknownTries = 10

type outcomeKind int

const (
	outDone outcomeKind = iota
	outRetry
	outRateLimited
	outFailed
	outFatal
)

type outcome struct {
	kind   outcomeKind
	reason string
	wait   time.Duration // outRateLimited
}

// classifySlack says what a Web API error means whatever the method: rate
// limited, worth retrying (5xx, network, a transient Slack error), a token
// that stopped working, or a Slack answer that retrying will not change.
func classifySlack(err error) outcome {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return outcome{kind: outRateLimited, wait: rl.RetryAfter, reason: "rate limited"}
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch {
		case slices.Contains(tokenCodes, se.Err):
			return outcome{kind: outFatal, reason: se.Err}
		case slices.Contains(transientCodes, se.Err):
			return outcome{kind: outRetry, reason: se.Err}
		}
		return outcome{kind: outFailed, reason: se.Err}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		if sc.Code == http.StatusTooManyRequests {
			return outcome{kind: outRateLimited, wait: time.Minute, reason: "rate limited (no Retry-After)"}
		}
		return outcome{kind: outRetry, reason: fmt.Sprintf("HTTP %d", sc.Code)}
	}
	return outcome{kind: outRetry, reason: err.Error()}
}

// classifyDelete decides what a chat.delete result means for a deletion that
// had made `attempts` attempts before this one. On top of classifySlack: a
// message_not_found after an attempt whose outcome was unknown counts as
// deleted, and a Slack error chat.delete is not known to give is retried a
// few times before it is taken as final.
func classifyDelete(err error, attempts int) outcome {
	if err == nil {
		return outcome{kind: outDone}
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		known := slices.Contains(terminalCodes, se.Err) || slices.Contains(tokenCodes, se.Err) || slices.Contains(transientCodes, se.Err)
		switch {
		case se.Err == "message_not_found" && attempts > 0:
			// An earlier attempt ended without an answer (timeout, 5xx,
			// network): it most likely deleted the message.
			return outcome{kind: outDone, reason: "message_not_found after an earlier attempt whose outcome was unknown"}
		case !known && attempts+1 < maxUnknownTries:
			return outcome{kind: outRetry, reason: se.Err}
		case !known:
			return outcome{kind: outFailed, reason: fmt.Sprintf("%s (gave up after %d attempts)", se.Err, attempts+1)}
		}
	}
	return classifySlack(err)
}

// classifyPost decides what a notification's Web API call (method) means. A
// token problem fails the notification only: it must not stop deletions,
// which the deleter decides for itself.
func classifyPost(method string, err error) outcome {
	if err == nil {
		return outcome{kind: outDone}
	}
	out := classifySlack(err)
	if out.kind == outFatal {
		out.kind = outFailed
	}
	out.reason = method + ": " + out.reason
	return out
}

// errCode names a Web API error for metrics: Slack's code, ratelimited,
// http_NNN or network.
func errCode(err error) string {
	var se slack.SlackErrorResponse
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	switch {
	case errors.As(err, &se):
		return se.Err
	case errors.As(err, &rl):
		return "ratelimited"
	case errors.As(err, &sc):
		return "http_" + strconv.Itoa(sc.Code)
	}
	return "network"
}

// backoff is the wait before attempt n+1 after n failed attempts: 1s, 2s,
// 4s… capped at max, with ±20% jitter so retries do not march in step.
func backoff(n int, maxWait time.Duration) time.Duration {
	d := time.Second << min(max(n-1, 0), 20)
	d = min(d, maxWait)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// failHint says what an admin can do about a deletion that failed for good.
func failHint(reason string) string {
	switch reason {
	case "cant_delete_message":
		return "the token's user may not delete this message: use an admin's or owner's token, and check the workspace's message deletion policy"
	case "channel_not_found", "not_in_channel":
		return "the token's user cannot see this conversation: add them to it"
	case "compliance_exports_prevent_deletion":
		return "the workspace's compliance exports forbid deleting messages; remove it by hand or change the policy"
	case "message_not_found":
		return "the message was already deleted, by its author or someone else"
	}
	return "see https://docs.slack.dev/reference/methods/chat.delete for this error"
}
