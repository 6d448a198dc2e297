package bot

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func TestClassify(t *testing.T) {
	slackErr := func(code string) error { return slack.SlackErrorResponse{Err: code} }
	tests := []struct {
		name     string
		err      error
		attempts int
		del      outcomeKind // for chat.delete
		post     outcomeKind // for a notification
		code     string      // errCode, for metrics
	}{
		{"rate limited", &slack.RateLimitedError{RetryAfter: 3 * time.Second}, 0, outRateLimited, outRateLimited, "ratelimited"},
		{"429 without header", slack.StatusCodeError{Code: 429}, 0, outRateLimited, outRateLimited, "http_429"},
		{"500", slack.StatusCodeError{Code: 500}, 0, outRetry, outRetry, "http_500"},
		{"network", errors.New("connection refused"), 0, outRetry, outRetry, "network"},
		{"transient code", slackErr("internal_error"), 0, outRetry, outRetry, "internal_error"},
		{"revoked token", slackErr("token_revoked"), 0, outFatal, outFailed, "token_revoked"},
		{"terminal delete code", slackErr("cant_delete_message"), 0, outFailed, outFailed, "cant_delete_message"},
		{"gone, first attempt", slackErr("message_not_found"), 0, outFailed, outFailed, "message_not_found"},
		{"gone after an unknown attempt", slackErr("message_not_found"), 1, outDone, outFailed, "message_not_found"},
		{"unknown code, early", slackErr("brand_new_error"), 2, outRetry, outFailed, "brand_new_error"},
		{"unknown code, last try", slackErr("brand_new_error"), maxUnknownTries - 1, outFailed, outFailed, "brand_new_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifyDelete(tt.err, tt.attempts); got.kind != tt.del {
				t.Errorf("classifyDelete = %+v, want kind %d", got, tt.del)
			}
			got := classifyPost("chat.postMessage", tt.err)
			if got.kind != tt.post {
				t.Errorf("classifyPost = %+v, want kind %d", got, tt.post)
			}
			if !strings.HasPrefix(got.reason, "chat.postMessage: ") {
				t.Errorf("classifyPost reason %q does not name the method", got.reason)
			}
			if c := errCode(tt.err); c != tt.code {
				t.Errorf("errCode = %q, want %q", c, tt.code)
			}
		})
	}
	if got := classifyDelete(nil, 3); got.kind != outDone {
		t.Errorf("classifyDelete(nil) = %+v, want done", got)
	}
	if got := classifyDelete(&slack.RateLimitedError{RetryAfter: 3 * time.Second}, 0); got.wait != 3*time.Second {
		t.Errorf("Retry-After not kept: %+v", got)
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 30: time.Minute} {
		got := backoff(n, time.Minute)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("backoff(%d) = %s, want %s ±20%%", n, got, want)
		}
	}
}

// TestClaimOutlastsTheCall: a claimed deletion or notification must not be
// claimable by another daemon while its call and outcome write may still be
// running.
func TestClaimOutlastsTheCall(t *testing.T) {
	if worst := callTimeout + writeTimeout; claimLease < worst+worst/2 {
		t.Errorf("claim lease %s is within 50%% of the worst case of a call and its write (%s)", claimLease, worst)
	}
}
