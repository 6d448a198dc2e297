package history

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/securechat/securechat/bot/message"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/notify"
	"github.com/securechat/securechat/bot/slackapi"
	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/store"
)

// Options say which history to read, and how: securechat scan and
// the back-tests of regex test read history through them.
type Options struct {
	UserToken  string
	APIURL     string
	HTTPClient *http.Client
	Pace       Pace
	// Since and Until bound the window (Until zero: now).
	Since, Until time.Time
	// Channels, when set, are the only conversations read (ids).
	Channels []string
	// Types are the conversation types read (channel, group, im, mpim);
	// empty means every type the token's scopes can list.
	Types []string
	// Scope is the daemon's: excluded channels and exempt users are left
	// out of sweeps too.
	Scope    message.Scope
	ScanBots bool
	Log      zerolog.Logger
	Now      func() time.Time
	// Progress, when set, is called as the read goes on.
	Progress func(Progress)
}

// Progress is how far a history read has come.
type Progress struct {
	Conversations int    // to read
	Done          int    // read completely
	Current       string // the conversation being read
	Messages      int    // scanned so far
	Findings      int    // messages with findings so far
	Waiting       bool   // waiting for Slack's rate limit
}

func (o *Options) defaults() {
	if o.APIURL == "" {
		o.APIURL = slackapi.DefaultAPIURL
	}
	if !strings.HasSuffix(o.APIURL, "/") {
		o.APIURL += "/"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Pace.PerMinute <= 0 {
		o.Pace.PerMinute = DefaultPace.PerMinute
	}
	if o.Pace.PageSize <= 0 {
		o.Pace.PageSize = DefaultPace.PageSize
	}
	if o.Until.IsZero() {
		o.Until = o.Now()
	}
}

// history is a prepared history read: the token checked, the conversations
// listed and the scope ready.
type history struct {
	o      Options
	reader *Reader
	convs  []Conversation
	scope  message.Filter
	prog   Progress
}

// openHistory checks the token and lists the conversations to read.
func openHistory(ctx context.Context, o Options) (*history, error) {
	o.defaults()
	api := slack.New(o.UserToken, slack.OptionAPIURL(o.APIURL), slack.OptionHTTPClient(o.HTTPClient))
	self, scopes, err := slackapi.CheckAuth(ctx, api, o.Log, slackapi.AuthOptions{Now: o.Now, APIURL: o.APIURL})
	if err != nil {
		return nil, err
	}
	h := &history{o: o, scope: message.NewFilter(o.Scope, self, nil)}
	h.reader = NewReader(o.HTTPClient, o.APIURL, o.UserToken, o.Pace, metrics.New(), o.Log, o.Now)
	h.reader.waiting = func(w bool) {
		h.prog.Waiting = w
		h.report()
	}
	types := ReaderTypes(scopes)
	if len(o.Types) > 0 {
		types = slices.DeleteFunc(slices.Clone(types), func(t string) bool { return !slices.Contains(o.Types, t) })
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("no conversation type to read: the token lacks channels:read, groups:read, im:read and mpim:read for the types asked (%v)", o.Types)
	}
	convs, err := h.reader.Conversations(ctx, types)
	if err != nil {
		return nil, err
	}
	for _, c := range convs {
		if len(o.Channels) > 0 && !slices.Contains(o.Channels, c.ID) {
			continue
		}
		if !h.scope.Conversation(c.ID, c.Type) {
			continue
		}
		h.convs = append(h.convs, c)
	}
	for _, id := range o.Channels {
		if !slices.ContainsFunc(h.convs, func(c Conversation) bool { return c.ID == id }) {
			return nil, fmt.Errorf("conversation %s: the token's user is not a member of it, it is archived, excluded by the scope, or of a type not read", id)
		}
	}
	h.prog.Conversations = len(h.convs)
	return h, nil
}

func (h *history) report() {
	if h.o.Progress != nil {
		h.o.Progress(h.prog)
	}
}

// names returns the conversation names the listing gave.
func (h *history) names() map[string]string {
	out := map[string]string{}
	for _, c := range h.convs {
		if c.Name != "" {
			out[c.ID] = c.Name
		}
	}
	return out
}

// content turns a history message of conv into what is scanned, or "" and
// a reason to skip it.
func (h *history) content(conv Conversation, m Message) (message.Content, bool) {
	m.Channel, m.ChannelType = conv.ID, conv.Type
	c, skip, err := message.FromEvent(&m.Event, h.o.ScanBots)
	if err != nil || skip != "" {
		return message.Content{}, false
	}
	if h.scope.Skip(c) != "" {
		return message.Content{}, false
	}
	return c, true
}

// SweepResult is what a sweep did.
type SweepResult struct {
	ID            int64          `json:"id"`
	Since         time.Time      `json:"since"`
	Until         time.Time      `json:"until"`
	Conversations int            `json:"conversations"`
	Messages      int            `json:"messages"`
	Findings      int            `json:"findings"`   // messages with findings
	NewLeaks      int            `json:"new_leaks"`  // leak records added (others were known already)
	ByChannel     map[string]int `json:"by_channel"` // messages with findings per conversation
	Resumed       bool           `json:"resumed"`
	AlreadyDone   bool           `json:"already_done"`
	Finished      time.Time      `json:"finished"`
}

// Sweep reads history with the stored enabled rules and records what it
// finds, marked as found in history, deleting nothing (store.EnforceHistory
// queues the deletions later). It continues an unfinished sweep with the
// same key from its per-conversation cursors, and does not repeat a
// finished one unless again is set. When it finishes it queues one summary
// alert and webhook event (notify).
func Sweep(ctx context.Context, st *store.Store, o Options, key string, again bool, notes notify.Config, allowlistKey []byte) (SweepResult, error) {
	o.defaults()
	res := SweepResult{ByChannel: map[string]int{}}
	snap, err := ruleset.Load(ctx, st, allowlistKey)
	if err != nil {
		return res, fmt.Errorf("load the rules: %w", err)
	}
	if snap.Set.Len() == 0 {
		return res, fmt.Errorf("no enabled rule to sweep with in this database: add rules (securechat regex add, regex import), or check that --db (or SECURECHAT_DB) names the daemon's database")
	}
	sw, resumed, err := st.StartSweep(ctx, key, TSOf(o.Since), TSOf(o.Until), again)
	if err != nil {
		return res, err
	}
	res.ID, res.Resumed, res.Since, res.Until = sw.ID, resumed, TimeOfTS(sw.SinceTS).UTC(), TimeOfTS(sw.UntilTS).UTC()
	if !sw.Finished.IsZero() {
		res.AlreadyDone, res.Finished, res.Messages, res.Findings = true, sw.Finished, sw.Messages, sw.Findings
		return res, nil
	}
	h, err := openHistory(ctx, o)
	if err != nil {
		return res, err
	}
	if err := st.SetNames(ctx, store.NameConversation, h.names()); err != nil {
		o.Log.Warn().Err(err).Msg("could not cache conversation names")
	}
	cursors, err := st.SweepCursors(ctx, sw.ID)
	if err != nil {
		return res, err
	}
	res.Conversations = len(h.convs)
	for _, conv := range h.convs {
		cur := cursors[conv.ID]
		cur.Channel = conv.ID
		h.prog.Current = conv.ID
		if cur.Done {
			h.prog.Done++
			h.prog.Messages += cur.Messages
			h.prog.Findings += cur.Findings
			res.Messages += cur.Messages
			res.Findings += cur.Findings
			if cur.Findings > 0 {
				res.ByChannel[conv.ID] = cur.Findings
			}
			continue
		}
		h.prog.Messages += cur.Messages
		h.prog.Findings += cur.Findings
		latest := sw.UntilTS
		if cur.Latest != "" {
			latest = cur.Latest
		}
		var pageMsgs, pageFinds int
		err := h.reader.Window(ctx, conv, Span{Oldest: sw.SinceTS, Latest: latest, Until: sw.UntilTS,
			PageDone: func(oldest string) error {
				cur.Latest, cur.Messages, cur.Findings = oldest, cur.Messages+pageMsgs, cur.Findings+pageFinds
				err := st.SaveSweepCursor(ctx, sw.ID, cur, pageMsgs, pageFinds)
				pageMsgs, pageFinds = 0, 0
				return err
			}},
			func(m Message) error {
				c, ok := h.content(conv, m)
				pageMsgs++
				h.prog.Messages++
				if ok {
					v := snap.Decide(c.Text, false)
					if len(v.Findings) > 0 {
						r, err := st.RecordLeak(ctx, store.Message{Channel: c.Channel, User: c.User, TS: c.TS, Origin: store.OriginHistory,
							Undeletable: store.Undeletable(c.ChannelType, c.Channel, c.User, h.scope.Self)}, v.Findings, false)
						if err != nil {
							return err
						}
						res.NewLeaks += r.NewLeaks
						pageFinds++
						h.prog.Findings++
					}
				}
				if h.prog.Messages%50 == 0 {
					h.report()
				}
				return nil
			})
		if err != nil {
			return res, fmt.Errorf("sweep %s (rerun the same command to continue): %w", conv.ID, err)
		}
		cur.Done, cur.Messages, cur.Findings = true, cur.Messages+pageMsgs, cur.Findings+pageFinds
		if err := st.SaveSweepCursor(ctx, sw.ID, cur, pageMsgs, pageFinds); err != nil {
			return res, err
		}
		res.Messages += cur.Messages
		res.Findings += cur.Findings
		if cur.Findings > 0 {
			res.ByChannel[conv.ID] = cur.Findings
		}
		h.prog.Done++
		h.report()
	}
	res.Finished = o.Now().UTC()
	summary := sweepNotes(notify.Notices{Cfg: notes, Now: o.Now}, res)
	if err := st.FinishSweep(ctx, sw.ID, summary...); err != nil {
		return res, err
	}
	return res, nil
}

// sweepNotes builds the one summary alert and webhook event of a sweep.
func sweepNotes(n notify.Notices, r SweepResult) []store.OutboxItem {
	var out []store.OutboxItem
	if n.Cfg.AlertChannel != "" {
		text := fmt.Sprintf(":mag: securechat scanned history from %s to %s: %d messages in %d conversations, %d with findings (recorded, not deleted).",
			r.Since.Format(time.RFC3339), r.Until.Format(time.RFC3339), r.Messages, r.Conversations, r.Findings)
		if r.Findings > 0 {
			var top []string
			for _, ch := range slices.Sorted(maps.Keys(r.ByChannel)) {
				top = append(top, fmt.Sprintf("<#%s> %d", ch, r.ByChannel[ch]))
			}
			if len(top) > 10 {
				top = append(top[:10], fmt.Sprintf("and %d more", len(top)-10))
			}
			text += " By conversation: " + strings.Join(top, ", ") + ". Review with `securechat leaks list --origin history`; delete with `securechat scan --enforce`."
		}
		out = append(out, store.OutboxItem{Kind: store.KindAlert, Payload: notify.Marshal(notify.Notice{Channel: n.Cfg.AlertChannel, Text: text})})
	}
	if n.Cfg.WebhookURL != "" {
		body := map[string]any{"id": fmt.Sprintf("sweep:%d", r.ID), "event": "sweep", "since": r.Since, "until": r.Until,
			"conversations": r.Conversations, "messages": r.Messages, "findings": r.Findings, "by_channel": r.ByChannel, "time": r.Finished}
		out = append(out, store.OutboxItem{Kind: store.KindWebhook, Payload: notify.Marshal(notify.Notice{Body: []byte(notify.Marshal(body))})})
	}
	return out
}

// BacktestResult is what a back-test found: what a rule set would have
// flagged in history. Nothing is stored.
type BacktestResult struct {
	Since         time.Time                  `json:"since"`
	Until         time.Time                  `json:"until"`
	Conversations int                        `json:"conversations"`
	Messages      int                        `json:"messages"`
	Flagged       int                        `json:"flagged"`
	ByChannel     map[string]BacktestChannel `json:"by_channel"`
	ByRule        map[int64]int              `json:"by_rule"` // messages each rule flags
	Examples      []BacktestExample          `json:"examples"`
}

// BacktestChannel is one conversation's share.
type BacktestChannel struct {
	Name     string `json:"name,omitempty"`
	Messages int    `json:"messages"`
	Flagged  int    `json:"flagged"`
}

// BacktestExample is one masked match.
type BacktestExample struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
	RegexID int64  `json:"regex_id"`
	Excerpt string `json:"excerpt"`
}

// maxExamples bounds the examples a back-test keeps.
const maxExamples = 5

// Backtest reads history as a sweep does and reports what snap would flag,
// per conversation and per rule, with a few masked examples. It stores
// nothing and deletes nothing.
func Backtest(ctx context.Context, o Options, snap *ruleset.Snapshot) (BacktestResult, error) {
	o.defaults()
	res := BacktestResult{Since: o.Since.UTC(), Until: o.Until.UTC(), ByChannel: map[string]BacktestChannel{}, ByRule: map[int64]int{}}
	h, err := openHistory(ctx, o)
	if err != nil {
		return res, err
	}
	res.Conversations = len(h.convs)
	for _, conv := range h.convs {
		h.prog.Current = conv.ID
		bc := BacktestChannel{Name: conv.Name}
		err := h.reader.Window(ctx, conv, Span{Oldest: TSOf(o.Since), Latest: TSOf(o.Until), Until: TSOf(o.Until)}, func(m Message) error {
			c, ok := h.content(conv, m)
			h.prog.Messages++
			res.Messages++
			bc.Messages++
			if h.prog.Messages%50 == 0 {
				h.report()
			}
			if !ok {
				return nil
			}
			fs := snap.Decide(c.Text, true).Findings
			if len(fs) == 0 {
				return nil
			}
			h.prog.Findings++
			res.Flagged++
			bc.Flagged++
			seen := map[int64]bool{}
			for _, f := range fs {
				if !seen[f.RegexID] {
					seen[f.RegexID] = true
					res.ByRule[f.RegexID]++
				}
				if len(res.Examples) < maxExamples {
					res.Examples = append(res.Examples, BacktestExample{Channel: c.Channel, TS: c.TS, RegexID: f.RegexID, Excerpt: f.Excerpt})
				}
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("read %s: %w", conv.ID, err)
		}
		res.ByChannel[conv.ID] = bc
		h.prog.Done++
		h.report()
	}
	return res, nil
}
