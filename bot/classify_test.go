package bot

import (
	"errors"
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
	}{
		{"rate limited", &slack.RateLimitedError{RetryAfter: 3 * time.Second}, 0, outRateLimited, outRateLimited},
		{"429 without header", slack.StatusCodeError{Code: 429}, 0, outRateLimited, outRateLimited},
		{"500", slack.StatusCodeError{Code: 500}, 0, outRetry, outRetry},
		{"network", errors.New("connection refused"), 0, outRetry, outRetry},
		{"transient code", slackErr("internal_error"), 0, outRetry, outRetry},
		{"revoked token", slackErr("token_revoked"), 0, outFatal, outFailed},
		{"terminal delete code", slackErr("cant_delete_message"), 0, outFailed, outFailed},
		{"gone, first attempt", slackErr("message_not_found"), 0, outFailed, outFailed},
		{"gone after an unknown attempt", slackErr("message_not_found"), 1, outDone, outFailed},
		{"unknown code, early", slackErr("brand_new_error"), 2, outRetry, outFailed},
		{"unknown code, last try", slackErr("brand_new_error"), maxUnknownTries - 1, outFailed, outFailed},
	}
	d := &Daemon{metrics: NewMetrics()}
	for _, tt := range tests {
		if got := classifyDelete(tt.err, tt.attempts); got.kind != tt.del {
			t.Errorf("%s: classifyDelete = %+v, want kind %d", tt.name, got, tt.del)
		}
		if got := d.slackOutcome("chat.postMessage", tt.err); got.kind != tt.post {
			t.Errorf("%s: slackOutcome = %+v, want kind %d", tt.name, got, tt.post)
		}
	}
	if got := classifyDelete(&slack.RateLimitedError{RetryAfter: 3 * time.Second}, 0); got.wait != 3*time.Second {
		t.Errorf("Retry-After not kept: %+v", got)
	}
}
