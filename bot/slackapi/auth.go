package slackapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
)

// RequiredUserScopes returns the user-token scopes securechat needs.
func RequiredUserScopes() []string {
	return []string{"chat:write", "channels:history", "groups:history", "im:history", "mpim:history"}
}

// ManifestUserScopes returns the user-token scopes the app manifest asks
// for: the required ones, im:write, which direct-message notices to authors
// need when no bot token is configured, and the read scopes of the history
// reader (ReaderScopes).
func ManifestUserScopes() []string {
	out := append(RequiredUserScopes(), "im:write")
	for _, r := range ReaderScopes() {
		out = append(out, r.Scope)
	}
	return out
}

// ReaderScope is a scope the history reader uses, and what does not work
// without it. The daemon starts without them.
type ReaderScope struct {
	Scope    string
	Type     string // the conversation type it lists (users.conversations), or ""
	Disabled string // what does not work without it
}

// ReaderScopes returns the scopes of the history reader.
func ReaderScopes() []ReaderScope {
	return []ReaderScope{
		{"channels:read", "channel", "catch-up skips public channels"},
		{"groups:read", "group", "catch-up skips private channels"},
		{"im:read", "im", "catch-up skips direct messages"},
		{"mpim:read", "mpim", "catch-up skips group direct messages"},
		{"users:read", "", "leaks list and alerts show user ids, not names"},
	}
}

const (
	AppTokenHint = "create an app-level token with the connections:write scope under Basic Information → App-Level Tokens, " +
		"make sure Socket Mode is enabled for the app, and set SLACK_APP_TOKEN"
	UserTokenHint = "copy the User OAuth Token (xoxp-…) under OAuth & Permissions, after installing the app as a " +
		"workspace admin or owner, and set SLACK_USER_TOKEN"
)

// TokenError is a token Slack refused. The daemon cannot work without it, so
// Run returns it instead of retrying.
type TokenError struct {
	Env  string // SLACK_APP_TOKEN or SLACK_USER_TOKEN
	Code string // Slack's error code, or a short description
	Hint string // what to do
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("%s was refused by Slack (%s): %s", e.Env, e.Code, e.Hint)
}

func IsTokenError(err error) bool {
	var te *TokenError
	return errors.As(err, &te)
}

// AppTokenError turns an apps.connections.open failure that will not go
// away by itself into a *TokenError; other errors come back unchanged.
func AppTokenError(err error) error {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) && slices.Contains(tokenCodes, se.Err) {
		hint := AppTokenHint
		if se.Err == "not_allowed_token_type" {
			hint = "SLACK_APP_TOKEN must be the app-level token (xapp-…), not a bot or user token: " + AppTokenHint
		}
		return &TokenError{Env: "SLACK_APP_TOKEN", Code: se.Err, Hint: hint}
	}
	for _, code := range tokenCodes[:4] {
		if err != nil && err.Error() == code {
			return &TokenError{Env: "SLACK_APP_TOKEN", Code: code, Hint: AppTokenHint}
		}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) && sc.Code == http.StatusNotFound {
		return fmt.Errorf("apps.connections.open answered 404: check SLACK_API_URL (it must end in /api/): %w", err)
	}
	return err
}

// AuthTester is the part of the Slack client checkAuth uses.
type AuthTester interface {
	AuthTestContext(ctx context.Context) (*slack.AuthTestResponse, error)
}

type AuthOptions struct {
	Now         func() time.Time
	APIURL      string // for messages
	WantIMWrite bool   // author notices may fall back to a DM with the user token
}

// CheckAuth verifies the user token with auth.test: it must be a user token,
// accepted, with the scopes securechat needs. It returns the token's user
// id. Network trouble and 5xx answers are retried for about half a minute,
// then reported; a token Slack refuses is a *TokenError.
// The second result is the token's scopes, nil when Slack did not list them.
func CheckAuth(ctx context.Context, api AuthTester, log zerolog.Logger, o AuthOptions) (string, []string, error) {
	var resp *slack.AuthTestResponse
	var err error
	wait := 500 * time.Millisecond
	deadline := o.Now().Add(30 * time.Second)
	for {
		resp, err = api.AuthTestContext(ctx)
		if err == nil {
			break
		}
		var se slack.SlackErrorResponse
		if errors.As(err, &se) {
			hint := UserTokenHint
			switch se.Err {
			case "not_allowed_token_type":
				hint = "SLACK_USER_TOKEN must be a user token (xoxp-…): " + UserTokenHint
			case "token_revoked", "token_expired", "account_inactive":
				hint = "the token's user or installation is gone; reinstall the app and " + UserTokenHint
			}
			return "", nil, &TokenError{Env: "SLACK_USER_TOKEN", Code: se.Err, Hint: hint}
		}
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		var sc slack.StatusCodeError
		if errors.As(err, &sc) && sc.Code == http.StatusNotFound {
			return "", nil, fmt.Errorf("auth.test at %s answered 404: check SLACK_API_URL (it must end in /api/)", o.APIURL)
		}
		if o.Now().After(deadline) {
			return "", nil, fmt.Errorf("cannot reach Slack at %s to check SLACK_USER_TOKEN: %w (check the network, a proxy (HTTPS_PROXY) or SLACK_API_URL)", o.APIURL, err)
		}
		var rl *slack.RateLimitedError
		if errors.As(err, &rl) {
			wait = rl.RetryAfter
		}
		log.Warn().Err(err).Dur("retry_in", wait).Msg("auth.test failed; retrying")
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 8*time.Second)
	}
	if resp.BotID != "" {
		return "", nil, &TokenError{Env: "SLACK_USER_TOKEN", Code: "bot token",
			Hint: "it belongs to a bot, and a bot can delete only its own messages: " + UserTokenHint}
	}
	if scopes := resp.Header.Get("X-OAuth-Scopes"); scopes != "" {
		have := strings.Split(scopes, ",")
		for i := range have {
			have[i] = strings.TrimSpace(have[i])
		}
		var missing []string
		for _, s := range RequiredUserScopes() {
			if !slices.Contains(have, s) {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			return "", nil, &TokenError{Env: "SLACK_USER_TOKEN", Code: "missing scopes " + strings.Join(missing, ", "),
				Hint: "add them under OAuth & Permissions → User Token Scopes (or use 'securechat manifest'), reinstall the app, and use the new token"}
		}
		if o.WantIMWrite && !slices.Contains(have, "im:write") {
			log.Warn().Msg("the user token lacks im:write: author notices cannot fall back to a direct message " +
				"(add im:write under User Token Scopes and reinstall, or set a bot token)")
		}
		for _, r := range ReaderScopes() {
			if !slices.Contains(have, r.Scope) {
				log.Warn().Str("scope", r.Scope).Str("without_it", r.Disabled).
					Msg("the user token lacks a read scope: add it under User Token Scopes (or use 'securechat manifest') and reinstall")
			}
		}
		log.Info().Str("user", resp.User).Str("user_id", resp.UserID).Str("team", resp.Team).Str("url", resp.URL).
			Msg("user token accepted")
		return resp.UserID, have, nil
	}
	log.Warn().Msg("auth.test did not list the token's scopes; cannot check them")
	log.Info().Str("user", resp.User).Str("user_id", resp.UserID).Str("team", resp.Team).Str("url", resp.URL).
		Msg("user token accepted")
	return resp.UserID, nil, nil
}
