package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Report kinds: what the author of a removed message said from its notice.
const (
	ReportNotSecret = "not_secret" // "Not a secret": goes to the admins
	ReportRotated   = "rotated"    // "I've rotated it": needs nobody
)

// Report statuses.
const (
	ReportOpen    = "open"    // waits for an admin
	ReportNoted   = "noted"   // needs nobody (rotated)
	ReportKept    = "kept"    // an admin kept the message deleted
	ReportAllowed = "allowed" // an admin allowed the value
)

// ErrNotAuthor is returned when someone reports a message that is not
// theirs.
var ErrNotAuthor = errors.New("only the author of the message can report it")

// Report is one member's answer about one leak of theirs.
type Report struct {
	ID        int64     `json:"id"`
	LeakID    int64     `json:"leak_id"`
	User      string    `json:"user"`
	Kind      string    `json:"kind"`
	Reason    string    `json:"reason,omitempty"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	ClosedBy  string    `json:"closed_by,omitempty"`
}

// ReportInput is a member's report about one of their messages.
type ReportInput struct {
	Channel, TS string // the message
	User        string // who reports: must be its author
	Kind        string // ReportNotSecret or ReportRotated
	Reason      string // optional, for not_secret
}

// ReportResult says what Report changed.
type ReportResult struct {
	// Recorded counts the leaks reported by this call; 0 when this person
	// had reported them already (a second click).
	Recorded int
	// Earlier is the kind of the report made before, when Recorded is 0.
	Earlier string
	// Leaks are the message's leaks, as recorded.
	Leaks []Leak
}

// Noise is the threshold at which a rule's "Not a secret" reports are
// flagged to the admins, once per rule.
type Noise struct {
	Reports int                          // not_secret reports of one rule at which it is flagged; 0: never
	Notes   func(NoisyRule) []OutboxItem // the flag's notifications
}

// NoisyRule is a rule whose reports passed the noise threshold.
type NoisyRule struct {
	RegexID   int64
	Rule      string
	Reports   int // not_secret reports
	Leaks     int // leaks found
	Reporters int // distinct members who reported
}

// reportMaxReason bounds a stored reason; a longer one is cut.
const reportMaxReason = 500

// Report records in.User's report about each of their leaks in the message,
// once per leak and person, with the notifications notes builds from the
// leaks (the admins' alert) in the same transaction. A report is made by
// the author only (ErrNotAuthor); a message with no recorded leak gives
// ErrNotFound. When noise is set and a rule's not_secret reports reach its
// threshold, the rule is flagged once, with noise.Notes.
func (s *Store) Report(ctx context.Context, in ReportInput, notes func([]Leak) []OutboxItem, noise Noise) (ReportResult, error) {
	if in.Kind != ReportNotSecret && in.Kind != ReportRotated {
		return ReportResult{}, fmt.Errorf("report: kind %q is neither %s nor %s", in.Kind, ReportNotSecret, ReportRotated)
	}
	if r := []rune(in.Reason); len(r) > reportMaxReason {
		in.Reason = string(r[:reportMaxReason]) + "…"
	}
	status := ReportOpen
	if in.Kind == ReportRotated {
		status = ReportNoted
	}
	var res ReportResult
	err := s.inTx(ctx, func(tx *txn) error {
		res = ReportResult{}
		ls, err := leaksWhere(ctx, tx, `l.channel = ? AND l.ts = ?`, in.Channel, in.TS)
		if err != nil {
			return err
		}
		if len(ls) == 0 {
			return fmt.Errorf("no leak recorded for message %s/%s: %w", in.Channel, in.TS, ErrNotFound)
		}
		var mine []Leak
		for _, l := range ls {
			if l.User == in.User {
				mine = append(mine, l)
			}
		}
		if len(mine) == 0 {
			return ErrNotAuthor
		}
		res.Leaks = mine
		now := s.millis()
		for _, l := range mine {
			r, err := tx.ExecContext(ctx,
				`INSERT INTO reports (leak_id, user_id, kind, reason, status, created_at) VALUES (?, ?, ?, ?, ?, ?)
				 ON CONFLICT (leak_id, user_id) DO NOTHING`, l.ID, in.User, in.Kind, in.Reason, status, now)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n > 0 {
				res.Recorded++
			}
		}
		if res.Recorded == 0 {
			return tx.QueryRowContext(ctx, `SELECT kind FROM reports WHERE leak_id = ? AND user_id = ?`, mine[0].ID, in.User).Scan(&res.Earlier)
		}
		if notes != nil {
			if err := enqueue(ctx, tx, now, notes(mine)); err != nil {
				return err
			}
		}
		if in.Kind != ReportNotSecret || noise.Reports <= 0 {
			return nil
		}
		seen := map[int64]bool{}
		for _, l := range mine {
			if seen[l.RegexID] {
				continue
			}
			seen[l.RegexID] = true
			nr := NoisyRule{RegexID: l.RegexID, Rule: l.Rule}
			if err := tx.QueryRowContext(ctx,
				`SELECT COUNT(*), COUNT(DISTINCT r.user_id) FROM reports r JOIN leaks l ON l.id = r.leak_id
				 WHERE l.regex_id = ? AND r.kind = 'not_secret'`, l.RegexID).Scan(&nr.Reports, &nr.Reporters); err != nil {
				return err
			}
			if nr.Reports < noise.Reports {
				continue
			}
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM leaks WHERE regex_id = ?`, l.RegexID).Scan(&nr.Leaks); err != nil {
				return err
			}
			first, err := audit(ctx, tx, now, AuditEntry{Actor: "securechat", Action: "rule.flag_noisy", Target: RegexTarget(l.RegexID),
				Detail: fmt.Sprintf("%d not-a-secret reports from %d members on %d leaks", nr.Reports, nr.Reporters, nr.Leaks)},
				"noisy:"+RegexTarget(l.RegexID))
			if err != nil {
				return err
			}
			if first && noise.Notes != nil {
				if err := enqueue(ctx, tx, now, noise.Notes(nr)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotAuthor) {
			return ReportResult{}, err
		}
		return ReportResult{}, fmt.Errorf("record report: %w", err)
	}
	return res, nil
}

// leaksWhere lists leaks by a condition on leaks l, inside tx.
func leaksWhere(ctx context.Context, tx *txn, cond string, args ...any) ([]Leak, error) {
	rows, err := tx.QueryContext(ctx, leakSelect+` WHERE `+cond+` ORDER BY l.id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Leak
	for rows.Next() {
		l, err := scanLeak(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Reports lists the reports about a leak's message, oldest first.
func (s *Store) Reports(ctx context.Context, leakID int64) ([]Report, error) {
	q := `SELECT id, leak_id, user_id, kind, reason, status, created_at, closed_by FROM reports
	      WHERE leak_id IN (SELECT b.id FROM leaks a JOIN leaks b ON b.channel = a.channel AND b.ts = a.ts WHERE a.id = ?) ORDER BY id`
	args := []any{leakID}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", classify(err))
	}
	defer rows.Close()
	var out []Report
	for rows.Next() {
		var r Report
		var created int64
		if err := rows.Scan(&r.ID, &r.LeakID, &r.User, &r.Kind, &r.Reason, &r.Status, &created, &r.ClosedBy); err != nil {
			return nil, fmt.Errorf("list reports: %w", err)
		}
		r.CreatedAt = fromMillis(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// OpenReports counts the reports waiting for an admin.
func (s *Store) OpenReports(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM reports WHERE status = 'open'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count open reports: %w", classify(err))
	}
	return n, nil
}

// RuleNoise is what members said about one rule's leaks.
type RuleNoise struct {
	Leaks     int `json:"leaks"`
	NotSecret int `json:"not_secret_reports"`
	Rotated   int `json:"rotated_reports"`
}

// Share is the false-positive share: the rule's leaks reported as not a
// secret, out of its leaks (0 when it has none).
func (n RuleNoise) Share() float64 {
	if n.Leaks == 0 {
		return 0
	}
	return float64(n.NotSecret) / float64(n.Leaks)
}

// ShareText is Share as people read it: "25%", or "-" for a rule with no
// leak yet.
func (n RuleNoise) ShareText() string {
	if n.Leaks == 0 {
		return "-"
	}
	return strconv.Itoa(int(n.Share()*100+0.5)) + "%"
}

// Noise returns, per rule id, its leaks and the reports about them.
func (s *Store) Noise(ctx context.Context) (map[int64]RuleNoise, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT l.regex_id, COUNT(DISTINCT l.id),
		        COUNT(DISTINCT CASE WHEN r.kind = 'not_secret' THEN l.id END),
		        COUNT(DISTINCT CASE WHEN r.kind = 'rotated' THEN l.id END)
		 FROM leaks l LEFT JOIN reports r ON r.leak_id = l.id GROUP BY l.regex_id`)
	if err != nil {
		return nil, fmt.Errorf("count reports per rule: %w", classify(err))
	}
	defer rows.Close()
	out := map[int64]RuleNoise{}
	for rows.Next() {
		var id int64
		var n RuleNoise
		if err := rows.Scan(&id, &n.Leaks, &n.NotSecret, &n.Rotated); err != nil {
			return nil, fmt.Errorf("count reports per rule: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

// AuditEntry is one change an admin made, or securechat made by itself.
type AuditEntry struct {
	ID int64     `json:"id"`
	At time.Time `json:"at"`
	// Actor is who did it and from where: "slack:U…" (a button or
	// /securechat), "os:NAME" (the CLI), or "securechat".
	Actor  string `json:"actor"`
	Action string `json:"action"` // e.g. rule.pause, value.allow, report.keep
	Target string `json:"target"` // e.g. regex:7, leak:42
	Detail string `json:"detail,omitempty"`
}

// RegexTarget and LeakTarget name an audit entry's target.
func RegexTarget(id int64) string { return "regex:" + strconv.FormatInt(id, 10) }

// LeakTarget names a leak as an audit target.
func LeakTarget(id int64) string { return "leak:" + strconv.FormatInt(id, 10) }

// audit appends e inside tx. With a once key, it is appended only if no
// entry holds that key yet, and it reports whether it was.
func audit(ctx context.Context, tx *txn, now int64, e AuditEntry, onceKey string) (bool, error) {
	if e.Actor == "" {
		e.Actor = "unknown"
	}
	var key any
	if onceKey != "" {
		key = onceKey
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO audit (at, actor, action, target, detail, once_key) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (once_key) DO NOTHING`,
		now, e.Actor, e.Action, e.Target, e.Detail, key)
	if err != nil {
		return false, fmt.Errorf("audit %s %s: %w", e.Action, e.Target, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// AuditLog returns the newest audit entries first, of one target ("" for
// every one), at most limit (0: 100).
func (s *Store) AuditLog(ctx context.Context, target string, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT id, at, actor, action, target, detail FROM audit`
	var args []any
	if target != "" {
		q += ` WHERE target = ?`
		args = append(args, target)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	rows, err := s.db.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", classify(err))
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, fmt.Errorf("read the audit log: %w", err)
		}
		e.At = fromMillis(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Change says what an admin action changed. Done is false when there was
// nothing to change (the same click twice, or another admin first): then
// By and At say who changed it and when, from the audit log.
type Change struct {
	Done      bool
	Cancelled int // deletions cancelled with it
	Held      int // deletions of the rule still held (ResumeRule)
	Closed    int // reports closed with it
	By        string
	At        time.Time
}

// lastAudit is the newest entry of action on target, for a Change that
// found nothing to do.
func lastAudit(ctx context.Context, tx *txn, action, target string) (by string, at time.Time, err error) {
	var ms int64
	err = tx.QueryRowContext(ctx, `SELECT actor, at FROM audit WHERE action = ? AND target = ? ORDER BY id DESC LIMIT 1`, action, target).Scan(&by, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil
	}
	return by, fromMillis(ms), err
}

// PauseRule switches a rule to monitor, as 'regex update ID --action
// monitor' does (queued deletions only it justified are cancelled), and
// audits it. A rule in trial stays in monitor and its trial ends (it will
// not switch to delete by itself); one the breaker tripped is now paused by
// a person. A rule in monitor already, with neither, is left alone (Done
// false).
func (s *Store) PauseRule(ctx context.Context, id int64, actor string) (Change, error) {
	return s.switchRule(ctx, id, actor, ActionMonitor)
}

// ResumeRule switches a rule back to delete and audits it; the deletions
// held for it stay held (Change.Held counts them). A rule that deletes
// already is left alone.
func (s *Store) ResumeRule(ctx context.Context, id int64, actor string) (Change, error) {
	return s.switchRule(ctx, id, actor, ActionDelete)
}

func (s *Store) switchRule(ctx context.Context, id int64, actor, action string) (Change, error) {
	var c Change
	err := s.inTx(ctx, func(tx *txn) (err error) {
		c, err = switchRuleTx(ctx, tx, s.millis(), id, actor, action)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Change{}, err
		}
		return Change{}, fmt.Errorf("switch regex %d to %s: %w", id, action, err)
	}
	return c, nil
}

// switchRuleTx is the one way a rule's action changes (PauseRule,
// ResumeRule, UpdateRegex with an action), inside tx: it also ends a trial
// and clears a breaker trip, cancels the queued deletions a switch to
// monitor leaves unjustified, counts what stays held on a switch to
// delete, and audits the change when actor is set. A rule that is so
// already is left alone (Done false, with who made it so).
func switchRuleTx(ctx context.Context, tx *txn, now, id int64, actor, action string) (Change, error) {
	if action != ActionDelete && action != ActionMonitor {
		return Change{}, fmt.Errorf("action %q: %w", action, ErrBadAction)
	}
	verb := "rule.pause"
	if action == ActionDelete {
		verb = "rule.resume"
	}
	var c Change
	res, err := tx.ExecContext(ctx,
		`UPDATE regexes SET action = ?, tripped_reason = '', trial_until = 0, updated_at = ?
		 WHERE id = ? AND (action != ? OR COALESCE(trial_until, 0) != 0 OR tripped_reason != '')`,
		action, now, id, action)
	if err != nil {
		return c, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM regexes WHERE id = ?`, id).Scan(&exists); err != nil {
			return c, err
		}
		if exists == 0 {
			return c, fmt.Errorf("regex %d: %w", id, ErrNotFound)
		}
		c.By, c.At, err = lastAudit(ctx, tx, verb, RegexTarget(id))
		return c, err
	}
	c.Done = true
	if action == ActionMonitor {
		c.Cancelled, err = cancelUnjustified(ctx, tx, now, actor, fmt.Sprintf("regex %d switched to monitor", id))
	} else {
		// What the breaker held for the rule stays held: resuming it is
		// its own decision ('leaks resume --rule').
		err = tx.QueryRowContext(ctx,
			`SELECT COUNT(*) FROM deletions d WHERE d.status = 'held' AND d.id IN (SELECT deletion_id FROM leaks WHERE regex_id = ?)`,
			id).Scan(&c.Held)
	}
	if err != nil || actor == "" {
		return c, err
	}
	detail := "action " + action
	if c.Cancelled > 0 {
		detail += fmt.Sprintf("; %d queued deletion(s) cancelled", c.Cancelled)
	}
	_, err = audit(ctx, tx, now, AuditEntry{Actor: actor, Action: verb, Target: RegexTarget(id), Detail: detail}, "")
	return c, err
}

// AllowLeak allowlists the value of a leak, closes the open reports of
// every leak of that value as allowed, and audits it (with a non-empty
// actor). A value
// allowlisted already is left alone (Done false).
func (s *Store) AllowLeak(ctx context.Context, leakID int64, note, actor string) (AllowedValue, Change, error) {
	var c Change
	var a AllowedValue
	err := s.inTx(ctx, func(tx *txn) error {
		c, a = Change{}, AllowedValue{}
		var mac string
		err := tx.QueryRowContext(ctx, `SELECT value_mac, excerpt, regex_id FROM leaks WHERE id = ?`, leakID).Scan(&mac, &a.Excerpt, &a.RegexID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("leak %d: %w", leakID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if mac == "" {
			return fmt.Errorf("leak %d: %w", leakID, ErrNoFingerprint)
		}
		now := s.millis()
		res, err := tx.ExecContext(ctx,
			`INSERT INTO allowed_values (mac, regex_id, leak_id, excerpt, note, created_at) VALUES (?, ?, ?, ?, ?, ?)
			 ON CONFLICT (mac) DO NOTHING`, mac, a.RegexID, leakID, a.Excerpt, note, now)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		var created int64
		if err := tx.QueryRowContext(ctx, `SELECT id, regex_id, leak_id, excerpt, note, created_at FROM allowed_values WHERE mac = ?`, mac).
			Scan(&a.ID, &a.RegexID, &a.LeakID, &a.Excerpt, &a.Note, &created); err != nil {
			return err
		}
		a.CreatedAt = fromMillis(created)
		if n == 0 {
			c.By, c.At, err = lastAudit(ctx, tx, "value.allow", LeakTarget(a.LeakID))
			return err
		}
		c.Done = true
		r, err := tx.ExecContext(ctx,
			`UPDATE reports SET status = 'allowed', closed_by = ?, closed_at = ? WHERE status = 'open' AND leak_id IN (SELECT id FROM leaks WHERE value_mac = ?)`,
			actor, now, mac)
		if err != nil {
			return err
		}
		closed, _ := r.RowsAffected()
		c.Closed = int(closed)
		if actor == "" {
			return nil
		}
		_, err = audit(ctx, tx, now, AuditEntry{Actor: actor, Action: "value.allow", Target: LeakTarget(leakID),
			Detail: fmt.Sprintf("value %s of regex %d allowlisted as entry %d", a.Excerpt, a.RegexID, a.ID)}, "")
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoFingerprint) {
			return AllowedValue{}, Change{}, err
		}
		return AllowedValue{}, Change{}, fmt.Errorf("allow leak %d: %w", leakID, err)
	}
	return a, c, nil
}

// KeepDeleted closes the open reports about the leak's message as kept (the
// admins looked, and the message stays deleted), and audits it. With no
// open report it changes nothing (Done false).
func (s *Store) KeepDeleted(ctx context.Context, leakID int64, actor string) (Change, error) {
	var c Change
	err := s.inTx(ctx, func(tx *txn) error {
		c = Change{}
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM leaks WHERE id = ?`, leakID).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return fmt.Errorf("leak %d: %w", leakID, ErrNotFound)
		}
		now := s.millis()
		res, err := tx.ExecContext(ctx,
			`UPDATE reports SET status = 'kept', closed_by = ?, closed_at = ?
			 WHERE status = 'open' AND leak_id IN (SELECT b.id FROM leaks a JOIN leaks b ON b.channel = a.channel AND b.ts = a.ts WHERE a.id = ?)`,
			actor, now, leakID)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if n == 0 {
			c.By, c.At, err = lastAudit(ctx, tx, "report.keep", LeakTarget(leakID))
			return err
		}
		c.Done, c.Closed = true, int(n)
		_, err = audit(ctx, tx, now, AuditEntry{Actor: actor, Action: "report.keep", Target: LeakTarget(leakID),
			Detail: fmt.Sprintf("%d report(s) closed: the message stays deleted", n)}, "")
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Change{}, err
		}
		return Change{}, fmt.Errorf("keep leak %d deleted: %w", leakID, err)
	}
	return c, nil
}

// Audit appends an entry for a change made outside the methods above (the
// CLI's rule edits).
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	return s.inTx(ctx, func(tx *txn) error {
		_, err := audit(ctx, tx, s.millis(), e, "")
		return err
	})
}
