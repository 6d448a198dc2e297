// Package slackapi holds what securechat knows of Slack's Web API apart from any
// one component: what an error means (retry, rate limited, failed, a token
// that stopped working), the tokens' checks and the scopes each feature needs.
package slackapi

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

// MaxUnknownTries bounds the attempts at answers we do not recognise, and at
// a notification.
const MaxUnknownTries = 10

type Kind int

const (
	OutDone Kind = iota
	OutRetry
	OutRateLimited
	OutFailed
	OutFatal
)

type Outcome struct {
	Kind   Kind
	Reason string
	Wait   time.Duration // outRateLimited
}

// ClassifySlack says what a Web API error means whatever the method: rate
// limited, worth retrying (5xx, network, a transient Slack error), a token
// that stopped working, or a Slack answer that retrying will not change.
func ClassifySlack(err error) Outcome {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return Outcome{Kind: OutRateLimited, Wait: rl.RetryAfter, Reason: "rate limited"}
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch {
		case slices.Contains(tokenCodes, se.Err):
			return Outcome{Kind: OutFatal, Reason: se.Err}
		case slices.Contains(transientCodes, se.Err):
			return Outcome{Kind: OutRetry, Reason: se.Err}
		}
		return Outcome{Kind: OutFailed, Reason: se.Err}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		if sc.Code == http.StatusTooManyRequests {
			return Outcome{Kind: OutRateLimited, Wait: time.Minute, Reason: "rate limited (no Retry-After)"}
		}
		return Outcome{Kind: OutRetry, Reason: fmt.Sprintf("HTTP %d", sc.Code)}
	}
	return Outcome{Kind: OutRetry, Reason: err.Error()}
}

// ClassifyDelete decides what a chat.delete result means for a deletion that
// had made `attempts` attempts before this one. On top of classifySlack: a
// message_not_found after an attempt whose outcome was unknown counts as
// deleted, and a Slack error chat.delete is not known to give is retried a
// few times before it is taken as final.
func ClassifyDelete(err error, attempts int) Outcome {
	if err == nil {
		return Outcome{Kind: OutDone}
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		known := slices.Contains(terminalCodes, se.Err) || slices.Contains(tokenCodes, se.Err) || slices.Contains(transientCodes, se.Err)
		switch {
		case se.Err == "message_not_found" && attempts > 0:
			// An earlier attempt ended without an answer (timeout, 5xx,
			// network): it most likely deleted the message.
			return Outcome{Kind: OutDone, Reason: "message_not_found after an earlier attempt whose outcome was unknown"}
		case !known && attempts+1 < MaxUnknownTries:
			return Outcome{Kind: OutRetry, Reason: se.Err}
		case !known:
			return Outcome{Kind: OutFailed, Reason: fmt.Sprintf("%s (gave up after %d attempts)", se.Err, attempts+1)}
		}
	}
	return ClassifySlack(err)
}

// ClassifyPost decides what a notification's Web API call (method) means. A
// token problem fails the notification only: it must not stop deletions,
// which the deleter decides for itself.
func ClassifyPost(method string, err error) Outcome {
	if err == nil {
		return Outcome{Kind: OutDone}
	}
	out := ClassifySlack(err)
	if out.Kind == OutFatal {
		out.Kind = OutFailed
	}
	out.Reason = method + ": " + out.Reason
	return out
}

// ErrCode names a Web API error for metrics: Slack's code, ratelimited,
// http_NNN or network.
func ErrCode(err error) string {
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

// Backoff is the wait before attempt n+1 after n failed attempts: 1s, 2s,
// 4s… capped at max, with ±20% jitter so retries do not march in step.
func Backoff(n int, maxWait time.Duration) time.Duration {
	d := time.Second << min(max(n-1, 0), 20)
	d = min(d, maxWait)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// FailHint says what an admin can do about a deletion that failed for good.
func FailHint(reason string) string {
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
