package slackapi

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
		del      Kind   // for chat.delete
		post     Kind   // for a notification
		code     string // errCode, for metrics
	}{
		{"rate limited", &slack.RateLimitedError{RetryAfter: 3 * time.Second}, 0, OutRateLimited, OutRateLimited, "ratelimited"},
		{"429 without header", slack.StatusCodeError{Code: 429}, 0, OutRateLimited, OutRateLimited, "http_429"},
		{"500", slack.StatusCodeError{Code: 500}, 0, OutRetry, OutRetry, "http_500"},
		{"network", errors.New("connection refused"), 0, OutRetry, OutRetry, "network"},
		{"transient code", slackErr("internal_error"), 0, OutRetry, OutRetry, "internal_error"},
		{"revoked token", slackErr("token_revoked"), 0, OutFatal, OutFailed, "token_revoked"},
		{"terminal delete code", slackErr("cant_delete_message"), 0, OutFailed, OutFailed, "cant_delete_message"},
		{"gone, first attempt", slackErr("message_not_found"), 0, OutFailed, OutFailed, "message_not_found"},
		{"gone after an unknown attempt", slackErr("message_not_found"), 1, OutDone, OutFailed, "message_not_found"},
		{"unknown code, early", slackErr("brand_new_error"), 2, OutRetry, OutFailed, "brand_new_error"},
		{"unknown code, last try", slackErr("brand_new_error"), MaxUnknownTries - 1, OutFailed, OutFailed, "brand_new_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassifyDelete(tt.err, tt.attempts); got.Kind != tt.del {
				t.Errorf("classifyDelete = %+v, want kind %d", got, tt.del)
			}
			got := ClassifyPost("chat.postMessage", tt.err)
			if got.Kind != tt.post {
				t.Errorf("classifyPost = %+v, want kind %d", got, tt.post)
			}
			if !strings.HasPrefix(got.Reason, "chat.postMessage: ") {
				t.Errorf("classifyPost reason %q does not name the method", got.Reason)
			}
			if c := ErrCode(tt.err); c != tt.code {
				t.Errorf("errCode = %q, want %q", c, tt.code)
			}
		})
	}
	if got := ClassifyDelete(nil, 3); got.Kind != OutDone {
		t.Errorf("classifyDelete(nil) = %+v, want done", got)
	}
	if got := ClassifyDelete(&slack.RateLimitedError{RetryAfter: 3 * time.Second}, 0); got.Wait != 3*time.Second {
		t.Errorf("Retry-After not kept: %+v", got)
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 30: time.Minute} {
		got := Backoff(n, time.Minute)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("backoff(%d) = %s, want %s ±20%%", n, got, want)
		}
	}
}
