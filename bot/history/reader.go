// Package history reads Slack history at a pace Slack allows (conversations,
// their pages and threads, with Retry-After and Tier 1 short pages), and runs
// what reads it on demand: sweeps (securechat scan) and back-tests (regex
// test --history). The daemon's catch-up reads through the same Reader.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/securechat/securechat/bot/internal/wait"
	"github.com/securechat/securechat/bot/message"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/slackapi"
)

// The history reader reads what the Web API's history methods hold: the
// conversations the token's user is a member of (users.conversations),
// their messages (conversations.history) and thread replies
// (conversations.replies). The catch-up uses it, and so do history sweeps.
// It calls the Web API itself, not through slack-go, so that a message from
// history is decoded exactly as a live event is (msgEvent, messageContent),
// whatever blocks it carries.

// Pace is the history reader's pacing.
type Pace struct {
	// PerMinute is how many calls of one method it makes a minute at most
	// [50: Slack's Tier 3, which conversations.history and .replies have
	// for internal apps such as securechat's]. A 429 halves it for that
	// method (down to one a minute, Tier 1) and its Retry-After is waited
	// out.
	PerMinute int
	// PageSize is the limit asked for per page [200]; Slack may return
	// fewer (15 at Tier 1), and the reader follows the cursors it gets.
	PageSize int
}

// DefaultPace is how fast history is read unless configured: 50 requests
// a minute (Slack's Tier 3), 200 messages a page.
var DefaultPace = Pace{PerMinute: 50, PageSize: 200}

// Conversation is one Conversation from users.conversations.
type Conversation struct {
	ID   string
	Name string // "" for a DM; User is the other member
	Type string // channel, group, im, mpim
	User string
}

// Message is a message from conversations.history or .replies.
type Message struct {
	message.Event
	ThreadTS    string `json:"thread_ts"`
	ReplyCount  int    `json:"reply_count"`
	LatestReply string `json:"latest_reply"`
}

// APIError is a Web API answer with "ok": false.
type APIError struct{ Method, Code string }

func (e *APIError) Error() string { return e.Method + ": " + e.Code }

// Reader calls the history methods with pacing and retries.
type Reader struct {
	http     *http.Client
	apiURL   string
	token    string
	pace     Pace
	log      zerolog.Logger
	metrics  *metrics.Metrics
	now      func() time.Time
	waiting  func(bool) // told when it waits for Slack's rate limit (progress lines)
	mu       sync.Mutex
	next     map[string]time.Time     // method → earliest next call
	interval map[string]time.Duration // method → current spacing
}

func NewReader(hc *http.Client, apiURL, token string, pace Pace, m *metrics.Metrics, log zerolog.Logger, now func() time.Time) *Reader {
	if pace.PerMinute <= 0 {
		pace.PerMinute = 50
	}
	if pace.PageSize <= 0 {
		pace.PageSize = 200
	}
	return &Reader{http: hc, apiURL: apiURL, token: token, pace: pace, log: log, metrics: m, now: now,
		next: map[string]time.Time{}, interval: map[string]time.Duration{}}
}

// maxHistoryTries bounds the attempts at one call that fails with a 5xx or a
// network error (429s are waited out however many there are).
const maxHistoryTries = 8

// Call POSTs one Web API Call and decodes its answer into out. It waits for
// the method's pace, waits out every 429's Retry-After, and retries 5xx
// answers and network errors with a growing back-off.
func (h *Reader) Call(ctx context.Context, method string, params url.Values, out any) error {
	backoff := time.Second
	for try := 1; ; try++ {
		if err := h.waitTurn(ctx, method); err != nil {
			return err
		}
		status, retryAfter, body, err := h.post(ctx, method, params)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case status == http.StatusTooManyRequests:
			h.rateLimited(method, retryAfter)
			try--
			continue
		case err != nil || status >= 500:
			if try >= maxHistoryTries {
				if err == nil {
					err = fmt.Errorf("HTTP %d", status)
				}
				return fmt.Errorf("%s failed %d times: %w", method, try, err)
			}
			h.log.Warn().Str("method", method).Int("status", status).AnErr("error", err).Dur("retry_in", backoff).Msg("history call failed; retrying")
			if err := wait.Sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		var ok struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(body, &ok); err != nil {
			return fmt.Errorf("%s answered what is not JSON (HTTP %d): %w", method, status, err)
		}
		if !ok.OK {
			if ok.Error == "ratelimited" {
				h.rateLimited(method, retryAfter)
				try--
				continue
			}
			return &APIError{Method: method, Code: ok.Error}
		}
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("decode the %s answer: %w", method, err)
		}
		return nil
	}
}

func (h *Reader) post(ctx context.Context, method string, params url.Values) (int, time.Duration, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.apiURL+method, strings.NewReader(params.Encode()))
	if err != nil {
		return 0, 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := h.http.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	ra := time.Duration(0)
	if s, e := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); e == nil && s >= 0 {
		ra = time.Duration(s) * time.Second
	}
	return resp.StatusCode, ra, body, err
}

// waitTurn sleeps until the method may be called again, and books the next
// turn.
func (h *Reader) waitTurn(ctx context.Context, method string) error {
	h.mu.Lock()
	iv, ok := h.interval[method]
	if !ok {
		iv = time.Minute / time.Duration(h.pace.PerMinute)
		h.interval[method] = iv
	}
	now := h.now()
	at := h.next[method]
	if at.Before(now) {
		at = now
	}
	h.next[method] = at.Add(iv)
	h.mu.Unlock()
	return wait.Sleep(ctx, at.Sub(now))
}

// rateLimited applies a 429: nothing more until Retry-After has passed (at
// least a second), and the method's pace halved, down to one a minute.
func (h *Reader) rateLimited(method string, retryAfter time.Duration) {
	retryAfter = max(retryAfter, time.Second)
	h.mu.Lock()
	iv := min(2*h.interval[method], time.Minute)
	h.interval[method] = iv
	h.next[method] = h.now().Add(retryAfter)
	h.mu.Unlock()
	h.metrics.SlackErrors.WithLabelValues(method, "ratelimited").Inc()
	h.log.Info().Str("method", method).Dur("retry_after", retryAfter).Dur("spacing", iv).
		Msg("waiting for Slack's rate limit")
	if h.waiting != nil {
		h.waiting(true)
		defer h.waiting(false)
	}
}

// tier1Spacing is Slack's pace for history methods of apps outside its
// Marketplace: one request a minute (with 15 messages a page).
const tier1Spacing = time.Minute

// tier1Page is the page Slack returns at Tier 1.
const tier1Page = 15

// shortPage is told when a page came back with fewer messages than asked
// while more remain: Slack caps pages that way for apps at Tier 1 (15 a
// page), so the method is slowed to Tier 1's pace at once rather than after
// a 429.
func (h *Reader) shortPage(method string, got, asked int) {
	h.mu.Lock()
	slowed := h.interval[method] < tier1Spacing
	if slowed {
		h.interval[method] = tier1Spacing
	}
	h.mu.Unlock()
	if slowed {
		h.log.Warn().Str("method", method).Int("page", got).Int("asked", asked).
			Msg("Slack returns short history pages (Tier 1 limits): reading at one request a minute")
	}
}

// slackTypes are users.conversations' type names for channel_type values.
var slackTypes = map[string]string{"channel": "public_channel", "group": "private_channel", "im": "im", "mpim": "mpim"}

// Conversations lists the Conversations of the given channel types
// (channel, group, im, mpim) that the token's user is a member of,
// archived ones left out.
func (h *Reader) Conversations(ctx context.Context, types []string) ([]Conversation, error) {
	var st []string
	for _, t := range types {
		st = append(st, slackTypes[t])
	}
	var out []Conversation
	cursor := ""
	for {
		p := url.Values{"types": {strings.Join(st, ",")}, "exclude_archived": {"true"}, "limit": {"200"}}
		if cursor != "" {
			p.Set("cursor", cursor)
		}
		var page struct {
			Channels []struct {
				ID      string `json:"id"`
				Name    string `json:"name"`
				User    string `json:"user"`
				IsIM    bool   `json:"is_im"`
				IsMPIM  bool   `json:"is_mpim"`
				IsGroup bool   `json:"is_group"`
				Private bool   `json:"is_private"`
			} `json:"channels"`
			Meta struct {
				NextCursor string `json:"next_cursor"`
			} `json:"response_metadata"`
		}
		if err := h.Call(ctx, "users.conversations", p, &page); err != nil {
			return nil, fmt.Errorf("list the conversations: %w", err)
		}
		for _, c := range page.Channels {
			typ := "channel"
			switch {
			case c.IsIM:
				typ = "im"
			case c.IsMPIM:
				typ = "mpim"
			case c.IsGroup || c.Private:
				typ = "group"
			}
			out = append(out, Conversation{ID: c.ID, Name: c.Name, Type: typ, User: c.User})
		}
		if cursor = page.Meta.NextCursor; cursor == "" {
			return out, nil
		}
	}
}

// Span bounds a read of one conversation's history.
type Span struct {
	Oldest string // after this ts ("" = from the start)
	Latest string // before this ts ("" = up to now)
	// Until bounds thread replies ("" = up to now); a resumed sweep reads
	// history from before its cursor (latest) but replies up to its end.
	Until string
	// PageDone, when set, is called after each history page and the threads
	// of its messages, with the page's oldest ts: everything newer has been
	// handled.
	PageDone func(oldest string) error
}

// histPage is one page of conversations.history or conversations.replies.
type histPage struct {
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"has_more"`
	Meta     struct {
		NextCursor string `json:"next_cursor"`
	} `json:"response_metadata"`
}

// next returns the cursor of the page after, "" at the end.
func (p *histPage) next() string {
	if !p.HasMore {
		return ""
	}
	return p.Meta.NextCursor
}

// page reads one page of a history method within oldest and latest (each
// "" for no bound), from cursor, and slows the method to Tier 1's pace when
// Slack returns a short page with more to come.
func (h *Reader) page(ctx context.Context, method string, p url.Values, oldest, latest, cursor string) (histPage, error) {
	p.Set("limit", strconv.Itoa(h.pace.PageSize))
	for k, v := range map[string]string{"oldest": oldest, "latest": latest, "cursor": cursor} {
		if v != "" {
			p.Set(k, v)
		}
	}
	var page histPage
	if err := h.Call(ctx, method, p, &page); err != nil {
		return page, err
	}
	if page.HasMore && len(page.Messages) < h.pace.PageSize && len(page.Messages) <= tier1Page {
		h.shortPage(method, len(page.Messages), h.pace.PageSize)
	}
	return page, nil
}

// Window reads the messages of one conversation inside sp (history newest
// first), and the replies inside the Window to the threads among them,
// calling fn for each (a thread's replies after its parent). A thread whose
// parent is older than sp.oldest is not read. It stops at the first error.
func (h *Reader) Window(ctx context.Context, c Conversation, sp Span, fn func(Message) error) error {
	cursor := ""
	for {
		page, err := h.page(ctx, "conversations.history", url.Values{"channel": {c.ID}}, sp.Oldest, sp.Latest, cursor)
		if err != nil {
			return fmt.Errorf("read the history of %s: %w", c.ID, err)
		}
		for _, m := range page.Messages {
			if err := fn(m); err != nil {
				return err
			}
			if m.ReplyCount > 0 && (m.ThreadTS == "" || m.ThreadTS == m.TS) && TSAfter(m.LatestReply, sp.Oldest) {
				if err := h.Replies(ctx, c, m.TS, sp.Oldest, sp.Until, fn); err != nil {
					return err
				}
			}
		}
		if sp.PageDone != nil && len(page.Messages) > 0 {
			if err := sp.PageDone(page.Messages[len(page.Messages)-1].TS); err != nil {
				return err
			}
		}
		if cursor = page.next(); cursor == "" {
			return nil
		}
	}
}

// Replies reads a thread's Replies after oldest; the parent is left out
// (the history page has it).
func (h *Reader) Replies(ctx context.Context, c Conversation, ts, oldest, latest string, fn func(Message) error) error {
	cursor := ""
	for {
		page, err := h.page(ctx, "conversations.replies", url.Values{"channel": {c.ID}, "ts": {ts}}, oldest, latest, cursor)
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == "thread_not_found" {
			return nil // deleted since the history page was read
		}
		if err != nil {
			return fmt.Errorf("read the thread %s in %s: %w", ts, c.ID, err)
		}
		for _, m := range page.Messages {
			if m.TS == ts {
				continue
			}
			if err := fn(m); err != nil {
				return err
			}
		}
		if cursor = page.next(); cursor == "" {
			return nil
		}
	}
}

// TSAfter reports whether Slack timestamp a is after b ("" is before
// everything).
func TSAfter(a, b string) bool {
	if b == "" {
		return a != ""
	}
	return TSCompare(a, b) > 0
}

// TSCompare compares two Slack timestamps ("1700000000.000100").
func TSCompare(a, b string) int {
	as, af, _ := strings.Cut(a, ".")
	bs, bf, _ := strings.Cut(b, ".")
	if len(as) != len(bs) {
		return len(as) - len(bs)
	}
	if c := strings.Compare(as, bs); c != 0 {
		return c
	}
	return strings.Compare(af+strings.Repeat("0", max(0, 6-len(af))), bf+strings.Repeat("0", max(0, 6-len(bf))))
}

// TSOf is the Slack timestamp of t.
func TSOf(t time.Time) string {
	us := t.UnixMicro()
	return fmt.Sprintf("%d.%06d", us/1_000_000, us%1_000_000)
}

// TimeOfTS is the time of a Slack timestamp (zero when it is not one).
func TimeOfTS(ts string) time.Time {
	s, f, _ := strings.Cut(ts, ".")
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	f = (f + "000000")[:6]
	us, _ := strconv.ParseInt(f, 10, 64)
	return time.Unix(sec, us*1000)
}

// ReaderTypes returns the conversation types the token's scopes let
// users.conversations list (all of them when the scopes are unknown).
func ReaderTypes(scopes []string) []string {
	var out []string
	for _, r := range slackapi.ReaderScopes() {
		if r.Type != "" && (scopes == nil || slices.Contains(scopes, r.Scope)) {
			out = append(out, r.Type)
		}
	}
	return out
}

// HasScope reports whether the scopes include s (true when unknown).
func HasScope(scopes []string, s string) bool {
	return scopes == nil || slices.ContainsFunc(scopes, func(x string) bool { return strings.TrimSpace(x) == s })
}
