package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Deletion statuses.
const (
	StatusPending = "pending"
	StatusDeleted = "deleted"
	StatusFailed  = "failed"
)

// Message identifies a Slack message: the conversation, its author and its ts.
type Message struct {
	Channel string
	User    string
	TS      string
	// Origin is OriginLive (an event or the catch-up) or OriginHistory (a
	// sweep); "" means live.
	Origin string
	// Undeletable is set when Slack does not let securechat delete the
	// message (another member's direct or group direct message; see
	// Undeletable): 'scan --enforce' never queues it.
	Undeletable bool
}

// Undeletable reports whether Slack refuses chat.delete on a message,
// whoever holds the token: a direct message (im) or group direct message
// (mpim) written by someone other than the token's user (self). A DM whose
// type is unknown is recognised by its id (D…). It is the one place that
// decides it, for the live path, the catch-up and history sweeps.
func Undeletable(channelType, channel, author, self string) bool {
	dm := channelType == "im" || channelType == "mpim" || (channelType == "" && strings.HasPrefix(channel, "D"))
	return dm && author != self
}

// Leak origins.
const (
	OriginLive    = "live"
	OriginHistory = "history"
)

// Finding is what the store keeps of one match: never the matched text, only
// the rule, a masked excerpt and the byte offsets in the normalised message.
type Finding struct {
	RegexID int64
	Rule    string // the regex's description when found
	Excerpt string // masked, e.g. 6759********8453
	Start   int
	End     int
	Action  string // ActionDelete or ActionMonitor; "" means delete
	// MAC is a keyed fingerprint (hex HMAC-SHA256) of the matched value,
	// for allowlisting it later; "" when no key is configured.
	MAC string
}

// RecordResult says what RecordLeak changed.
type RecordResult struct {
	// NewLeaks counts the findings that were not recorded before (0 for a
	// redelivered event).
	NewLeaks int
	// DeletionID is the message's deletion row (0 when none was asked for).
	DeletionID int64
	// NewDeletion is true when this call queued the deletion.
	NewDeletion bool
	// Requeued is true when the message's deletion had ended without
	// deleting it (failed, cancelled or held) and new findings made it
	// pending again: a new finding gets its own decision (NewDeletion is
	// true too). Reopened is the status it had.
	Requeued bool
	Reopened string
	// Trips counts the rules the breaker tripped while recording
	// (RecordLeakWeighed), whose alerts were queued.
	Trips int
}

// RecordLeak records the findings of one message and, when deleteMsg is set,
// queues the message's deletion, in one transaction: either both are on disk
// or neither is. Recording the same message again (a redelivered event) adds
// nothing and queues nothing new. The outbox items are queued in the same
// transaction, and only when a finding was new.
func (s *Store) RecordLeak(ctx context.Context, msg Message, findings []Finding, deleteMsg bool, notes ...OutboxItem) (RecordResult, error) {
	return s.recordLeak(ctx, msg, findings, deleteMsg, notes, nil)
}

// Breaker is the runaway-rule breaker's limits, for RecordLeakWeighed: a
// rule that would queue more than MaxDeletions deletions within Window, or
// more than MaxShare of the messages scanned (once MinScanned were), is
// switched to monitor before this message's deletion is queued.
type Breaker struct {
	Window       time.Duration
	MaxDeletions int
	MaxShare     float64
	MinScanned   int
	// Unflushed is what this daemon scanned and has not added to the
	// shared counts yet.
	Unflushed int
	// Now is the end of the window.
	Now time.Time
	// Reason builds a tripped rule's tripped_reason from why it tripped;
	// Notes its alerts.
	Reason func(why string) string
	Notes  func(f Finding, why string) []OutboxItem
}

// Trip is a rule the breaker switched to monitor while recording.
type Trip struct {
	Finding Finding
	Why     string
	Held    int // queued deletions it held
}

// RecordLeakWeighed is RecordLeak with the runaway-rule breaker weighed in
// the same transaction: for each rule whose delete finding would queue the
// message's deletion, the window's deletions of that rule (every daemon's:
// the transaction holds the database's write lock) are counted with this
// one, and a rule over the limits is tripped (switched to monitor, its
// queued deletions held, its alert queued) and its findings here become
// monitor. So the limit is exact however many daemons share the database.
// notes builds the notices for the findings as weighed, and whether the
// message is still to be deleted (deleteMsg and a delete finding left).
// It returns the findings as recorded and the trips.
func (s *Store) RecordLeakWeighed(ctx context.Context, msg Message, findings []Finding, deleteMsg bool, b Breaker,
	notes func(fs []Finding, deleteMsg bool) []OutboxItem) (RecordResult, []Finding, []Trip, error) {
	w := &weighing{Breaker: b, notes: notes}
	res, err := s.recordLeak(ctx, msg, findings, deleteMsg, nil, w)
	res.Trips = len(w.trips)
	return res, w.findings, w.trips, err
}

// weighing carries the breaker into recordLeak's transaction, and its
// results out.
type weighing struct {
	Breaker
	notes    func(fs []Finding, deleteMsg bool) []OutboxItem
	findings []Finding
	trips    []Trip
}

// weigh applies the breaker inside tx and returns the findings, the
// deletion decision and the notes as weighed.
func (w *weighing) weigh(ctx context.Context, tx *txn, now int64, msg Message, findings []Finding, deleteMsg bool) ([]Finding, bool, []OutboxItem, error) {
	fs := append([]Finding(nil), findings...)
	w.trips = nil
	if deleteMsg {
		since := w.Now.Add(-w.Window)
		checked := map[int64]bool{}
		for i, f := range fs {
			if !f.Deletes() {
				continue
			}
			tripped, seen := checked[f.RegexID]
			if !seen {
				var err error
				if tripped, err = w.check(ctx, tx, now, msg, f, since); err != nil {
					return nil, false, nil, err
				}
				checked[f.RegexID] = tripped
			}
			if tripped {
				fs[i].Action = ActionMonitor
			}
		}
		deleteMsg = slices.ContainsFunc(fs, Finding.Deletes)
	}
	w.findings = fs
	return fs, deleteMsg, w.notes(fs, deleteMsg), nil
}

// check trips f's rule when one more deletion would take it past the
// limits, and reports whether the rule must not delete (tripped now, or
// by another daemon since this one loaded its rules).
func (w *weighing) check(ctx context.Context, tx *txn, now int64, msg Message, f Finding, since time.Time) (bool, error) {
	var action string
	if err := tx.QueryRowContext(ctx, `SELECT action FROM regexes WHERE id = ?`, f.RegexID).Scan(&action); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil // removed: the claim cancels its deletion
		}
		return false, err
	}
	if action != ActionDelete {
		return true, nil
	}
	// A message whose deletion the rule queued already (a redelivered
	// event, a message seen live and by the catch-up) is counted already:
	// it was let through then, and adds nothing now.
	var counted bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM leaks l JOIN deletions d ON d.id = l.deletion_id
		 WHERE d.channel = ? AND d.ts = ? AND l.regex_id = ? AND l.action = 'delete' AND l.origin = 'live' AND l.detected_at >= ?)`,
		msg.Channel, msg.TS, f.RegexID, since.UnixMilli()).Scan(&counted); err != nil {
		return false, err
	}
	if counted {
		return false, nil
	}
	var deletions, scanned int
	if err := tx.QueryRowContext(ctx, ruleLoadQuery, f.RegexID, since.UnixMilli(), since.Truncate(ScanBucket).UnixMilli()).
		Scan(&deletions, &scanned); err != nil {
		return false, err
	}
	deletions++
	scanned += w.Unflushed
	var why string
	switch {
	case deletions > w.MaxDeletions:
		why = fmt.Sprintf("%d deletions in %s (the limit is %d)", deletions, w.Window, w.MaxDeletions)
	case scanned >= w.MinScanned && float64(deletions) > w.MaxShare*float64(scanned):
		why = fmt.Sprintf("%d deletions for %d messages scanned in %s: %.1f%% (the limit is %.1f%%)",
			deletions, scanned, w.Window, 100*float64(deletions)/float64(scanned), 100*w.MaxShare)
	default:
		return false, nil
	}
	held, err := tripRule(ctx, tx, now, f.RegexID, w.Reason(why), w.Notes(f, why))
	if err != nil || held < 0 {
		return held < 0, err
	}
	w.trips = append(w.trips, Trip{Finding: f, Why: why, Held: held})
	return true, nil
}

func (s *Store) recordLeak(ctx context.Context, msg Message, findings []Finding, deleteMsg bool, notes []OutboxItem, w *weighing) (RecordResult, error) {
	var res RecordResult
	if len(findings) == 0 {
		return res, nil
	}
	now := s.millis()
	given, deleteGiven, notesGiven := findings, deleteMsg, notes
	err := s.inTx(ctx, func(tx *txn) (err error) {
		// Run again from the start when PostgreSQL retries the transaction.
		res, findings, deleteMsg, notes = RecordResult{}, given, deleteGiven, notesGiven
		if w != nil {
			w.findings, w.trips = nil, nil
		}
		if w != nil {
			if findings, deleteMsg, notes, err = w.weigh(ctx, tx, now, msg, findings, deleteMsg); err != nil {
				return fmt.Errorf("weigh the breaker for %s at %s: %w", msg.Channel, msg.TS, classify(err))
			}
		}

		var deletionID any // NULL unless a deletion is queued
		if deleteMsg {
			// Findings a history sweep recorded without a deletion are attached
			// to it: the message is seen live (or caught up) and its rules delete.
			var attached int
			res.DeletionID, res.NewDeletion, attached, err = queueDeletion(ctx, tx, now, msg.Channel, msg.TS)
			if err != nil {
				return fmt.Errorf("queue deletion of %s at %s: %w", msg.Channel, msg.TS, classify(err))
			}
			deletionID = res.DeletionID
			res.NewLeaks += attached
		}
		origin := msg.Origin
		if origin == "" {
			origin = OriginLive
		}
		stmt, err := tx.PrepareContext(ctx,
			`INSERT INTO leaks (channel, user_id, ts, regex_id, rule, excerpt, start_offset, end_offset, detected_at, deletion_id, action, value_mac, origin, deletable)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (channel, ts, regex_id, start_offset, end_offset) DO NOTHING`)
		if err != nil {
			return fmt.Errorf("record leak in %s at %s: %w", msg.Channel, msg.TS, classify(err))
		}
		defer stmt.Close()
		// The values already recorded for the message, when its deletion exists
		// already: only a new value (not the same one at other offsets, after
		// an edit that moved it) reopens a deletion that ended.
		var known map[string]bool
		if deleteMsg && !res.NewDeletion {
			if known, err = recordedValues(ctx, tx, msg); err != nil {
				return fmt.Errorf("record leak in %s at %s: %w", msg.Channel, msg.TS, classify(err))
			}
		}
		newValues := 0
		for _, f := range findings {
			action := f.Action
			if action == "" {
				action = ActionDelete
			}
			r, err := stmt.ExecContext(ctx, msg.Channel, msg.User, msg.TS, f.RegexID, f.Rule, f.Excerpt, f.Start, f.End, now, deletionID, action, f.MAC, origin, !msg.Undeletable)
			if err != nil {
				return fmt.Errorf("record leak in %s at %s: %w", msg.Channel, msg.TS, classify(err))
			}
			if n, _ := r.RowsAffected(); n == 1 {
				res.NewLeaks++
				if k := valueKey(f.RegexID, f.MAC, f.Excerpt); known != nil && !known[k] && f.Deletes() {
					known[k] = true
					newValues++
				}
			}
		}
		if newValues > 0 {
			// A new value in a message whose deletion ended without deleting it
			// (an edit after a failure, after an admin or a rule change
			// cancelled it, or while it was held) gets its own decision: the
			// deletion is pending again rather than the finding filed under a
			// deletion that will never run. A second failure alerts again; the
			// claim checks the rules again. The status read is the update's
			// condition, so a change made meanwhile is never overwritten.
			var was string
			if err := tx.QueryRowContext(ctx, `SELECT status FROM deletions WHERE id = ?`, res.DeletionID).Scan(&was); err != nil {
				return fmt.Errorf("requeue deletion of %s at %s: %w", msg.Channel, msg.TS, classify(err))
			}
			if was == StatusFailed || was == StatusCancelled || was == StatusHeld {
				r, err := tx.ExecContext(ctx,
					`UPDATE deletions SET status = 'pending', next_attempt_at = ?, updated_at = ?,
				        last_error = 'new findings after it was ' || ? || CASE WHEN last_error = '' THEN '' ELSE ': ' || last_error END
				 WHERE id = ? AND status = ?`, now, now, was, res.DeletionID, was)
				if err != nil {
					return fmt.Errorf("requeue deletion of %s at %s: %w", msg.Channel, msg.TS, classify(err))
				}
				if n, _ := r.RowsAffected(); n == 1 {
					res.NewDeletion, res.Requeued, res.Reopened = true, true, was
				}
			}
		}
		if res.NewLeaks > 0 {
			if err := enqueue(ctx, tx, now, notes); err != nil {
				return fmt.Errorf("record leak in %s at %s: %w", msg.Channel, msg.TS, err)
			}
		}
		return nil
	})
	if err != nil {
		return RecordResult{}, err
	}
	return res, nil
}

// valueKey identifies a finding's value within a message: the rule and the
// value's keyed fingerprint, or, without one, its masked excerpt.
func valueKey(regexID int64, mac, excerpt string) string {
	if mac != "" {
		return fmt.Sprintf("%d\x00mac\x00%s", regexID, mac)
	}
	return fmt.Sprintf("%d\x00excerpt\x00%s", regexID, excerpt)
}

// recordedValues returns the value keys (valueKey) recorded for a message.
func recordedValues(ctx context.Context, tx *txn, msg Message) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT regex_id, value_mac, excerpt FROM leaks WHERE channel = ? AND ts = ?`, msg.Channel, msg.TS)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	known := map[string]bool{}
	for rows.Next() {
		var id int64
		var mac, excerpt string
		if err := rows.Scan(&id, &mac, &excerpt); err != nil {
			return nil, err
		}
		known[valueKey(id, mac, excerpt)] = true
	}
	return known, rows.Err()
}

// Deletes reports whether the finding's action is delete ("" means delete).
func (f Finding) Deletes() bool { return f.Action == ActionDelete || f.Action == "" }

// Leak is one recorded finding with the state of its message's deletion.
type Leak struct {
	ID      int64  `json:"id"`
	Channel string `json:"channel"`
	User    string `json:"user"`
	// ChannelName and UserName come from the daemon's name cache ("" when
	// it has none); the CLI fills them in.
	ChannelName string    `json:"channel_name,omitempty"`
	UserName    string    `json:"user_name,omitempty"`
	TS          string    `json:"ts"`
	RegexID     int64     `json:"regex_id"`
	Rule        string    `json:"rule"`
	Excerpt     string    `json:"excerpt"`
	Start       int       `json:"start"`
	End         int       `json:"end"`
	DetectedAt  time.Time `json:"detected_at"`
	// Status says what happened to the message: its deletion's status
	// (pending, held, cancelled, deleted, failed), or, without a
	// deletion, monitored, undeletable or found (see LeakStatuses).
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	// Action is what was decided at detection: delete or monitor.
	Action string `json:"action"`
	// Allowable is true when the leak carries a value fingerprint, so
	// 'leaks allow' can allowlist its value.
	Allowable bool `json:"allowable"`
	// DeletionID is the message's deletion (0 for a monitored leak).
	DeletionID int64 `json:"-"`
	// HoldReason says why a held deletion is held (monitor mode).
	HoldReason string `json:"hold_reason,omitempty"`
	// CancelledBy and CancelReason say who cancelled the deletion (an OS
	// user) and why, for a cancelled one.
	CancelledBy  string `json:"cancelled_by,omitempty"`
	CancelReason string `json:"cancel_reason,omitempty"`
	// Origin is live (an event, or the catch-up) or history (a sweep).
	Origin string `json:"origin"`
	// Report is what its author said from the notice's buttons, as
	// "KIND STATUS" (not_secret open, rotated noted…); "" for none.
	Report string `json:"report,omitempty"`
}

// LeakFilter narrows Leaks. Zero values mean "any".
type LeakFilter struct {
	ID         int64
	Channel    string
	TS         string // one message's (with Channel)
	Status     string
	Action     string
	Since      time.Time
	RegexID    int64
	DeletionID int64
	Origin     string
	// Reported keeps the leaks with a report in this status (open, kept,
	// allowed, noted), or with any report ("any").
	Reported string
	Limit    int
}

// Leak status words besides the deletion's statuses: what happened to a
// message that has no deletion.
const (
	// LeakMonitored: recorded and alerted, not deleted (a monitor rule or
	// monitor mode).
	LeakMonitored = "monitored"
	// LeakUndeletable: another member's direct or group direct message,
	// which Slack does not let securechat delete; its author was told.
	LeakUndeletable = "undeletable"
	// LeakFound: found by a history sweep ('securechat scan'), whose
	// deletion 'scan --enforce' has not queued.
	LeakFound = "found"
)

// LeakStatuses lists every status word a leak can have.
var LeakStatuses = []string{StatusPending, StatusHeld, StatusDeleted, StatusFailed, StatusCancelled, LeakMonitored, LeakUndeletable, LeakFound}

// leakStatus is a leak's status word: its deletion's status, or what
// happened to a message without one.
const leakStatus = `CASE WHEN d.status IS NOT NULL THEN d.status
	WHEN l.action = 'monitor' THEN 'monitored'
	WHEN l.deletable = 0 THEN 'undeletable'
	WHEN l.origin = 'history' THEN 'found'
	ELSE 'monitored' END`

const leakSelect = `SELECT l.id, l.channel, l.user_id, l.ts, l.regex_id, l.rule, l.excerpt, l.start_offset, l.end_offset,
	             l.detected_at, ` + leakStatus + `, COALESCE(d.attempts, 0), COALESCE(d.last_error, ''),
	             l.action, l.value_mac != '', COALESCE(l.deletion_id, 0),
	             CASE WHEN d.status = 'held' THEN d.hold_reason ELSE '' END,
	             CASE WHEN d.status = 'cancelled' THEN d.cancelled_by ELSE '' END,
	             CASE WHEN d.status = 'cancelled' THEN d.cancel_reason ELSE '' END, l.origin,
	             COALESCE((SELECT r.kind || ' ' || r.status FROM reports r WHERE r.leak_id = l.id ORDER BY r.id LIMIT 1), '')
	      FROM leaks l LEFT JOIN deletions d ON d.id = l.deletion_id`

// scanLeak reads one row of leakSelect.
func scanLeak(rows interface{ Scan(...any) error }) (Leak, error) {
	var l Leak
	var detected int64
	err := rows.Scan(&l.ID, &l.Channel, &l.User, &l.TS, &l.RegexID, &l.Rule, &l.Excerpt, &l.Start, &l.End,
		&detected, &l.Status, &l.Attempts, &l.LastError, &l.Action, &l.Allowable, &l.DeletionID,
		&l.HoldReason, &l.CancelledBy, &l.CancelReason, &l.Origin, &l.Report)
	l.DetectedAt = fromMillis(detected)
	return l, err
}

// Leaks returns recorded leaks, newest first.
func (s *Store) Leaks(ctx context.Context, f LeakFilter) ([]Leak, error) {
	var where []string
	var args []any
	if f.Channel != "" {
		where = append(where, "l.channel = ?")
		args = append(args, f.Channel)
	}
	if f.TS != "" {
		where = append(where, "l.ts = ?")
		args = append(args, f.TS)
	}
	if f.Status != "" {
		where = append(where, "("+leakStatus+") = ?")
		args = append(args, f.Status)
	}
	if !f.Since.IsZero() {
		where = append(where, "l.detected_at >= ?")
		args = append(args, f.Since.UnixMilli())
	}
	if f.RegexID != 0 {
		where = append(where, "l.regex_id = ?")
		args = append(args, f.RegexID)
	}
	if f.DeletionID != 0 {
		where = append(where, "l.deletion_id = ?")
		args = append(args, f.DeletionID)
	}
	if f.ID != 0 {
		where = append(where, "l.id = ?")
		args = append(args, f.ID)
	}
	if f.Action != "" {
		where = append(where, "l.action = ?")
		args = append(args, f.Action)
	}
	if f.Origin != "" {
		where = append(where, "l.origin = ?")
		args = append(args, f.Origin)
	}
	if f.Reported != "" {
		where = append(where, "EXISTS (SELECT 1 FROM reports r WHERE r.leak_id = l.id AND (r.status = ? OR ? = 'any'))")
		args = append(args, f.Reported, f.Reported)
	}
	q := leakSelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY l.detected_at DESC, l.id DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list leaks: %w", classify(err))
	}
	defer rows.Close()
	var out []Leak
	for rows.Next() {
		l, err := scanLeak(rows)
		if err != nil {
			return nil, fmt.Errorf("list leaks: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list leaks: %w", classify(err))
	}
	return out, nil
}

// RemaskExcerpts re-masks, once after the upgrade that asks for it, every
// excerpt an earlier release stored (leaks, allowlisted values, and the
// notifications not sent yet) with remask, which must only hide more. It
// returns how many excerpts it changed; later calls change nothing.
func (s *Store) RemaskExcerpts(ctx context.Context, remask func(string) string) (int, error) {
	changed := 0
	err := s.inTx(ctx, func(tx *txn) error {
		changed = 0 // run again from the start when PostgreSQL retries it
		var pending int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT value FROM meta WHERE key = 'remask_pending'), 0)`).Scan(&pending); err != nil {
			return err
		}
		if pending == 0 {
			return nil
		}
		renamed := map[string]string{} // old excerpt → new
		for _, table := range []string{"leaks", "allowed_values"} {
			rows, err := tx.QueryContext(ctx, `SELECT id, excerpt FROM `+table)
			if err != nil {
				return err
			}
			type row struct {
				id      int64
				excerpt string
			}
			var todo []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.id, &r.excerpt); err != nil {
					rows.Close()
					return err
				}
				if n := remask(r.excerpt); n != r.excerpt {
					renamed[r.excerpt] = n
					r.excerpt = n
					todo = append(todo, r)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, r := range todo {
				if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET excerpt = ? WHERE id = ?`, r.excerpt, r.id); err != nil {
					return err
				}
				changed++
			}
		}
		if len(renamed) > 0 {
			rows, err := tx.QueryContext(ctx, `SELECT id, payload FROM outbox WHERE status = 'pending'`)
			if err != nil {
				return err
			}
			updates := map[int64]string{}
			for rows.Next() {
				var id int64
				var payload string
				if err := rows.Scan(&id, &payload); err != nil {
					rows.Close()
					return err
				}
				p := payload
				for old, n := range renamed {
					p = replaceEncoded(p, old, n)
				}
				if p != payload {
					updates[id] = p
				}
			}
			rows.Close()
			for id, p := range updates {
				if _, err := tx.ExecContext(ctx, `UPDATE outbox SET payload = ? WHERE id = ?`, p, id); err != nil {
					return err
				}
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE meta SET value = 0 WHERE key = 'remask_pending'`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("re-mask stored excerpts: %w", err)
	}
	return changed, nil
}

// queueDeletion queues the deletion of one message, unless it has a
// deletion row already (whatever its state), and attaches to it the
// message's delete findings that a history sweep recorded without one. It
// returns the deletion's id, whether this call created it, and how many
// findings it attached.
func queueDeletion(ctx context.Context, tx *txn, now int64, channel, ts string) (id int64, created bool, attached int, err error) {
	r, err := tx.ExecContext(ctx,
		`INSERT INTO deletions (channel, ts, status, next_attempt_at, created_at, updated_at)
		 VALUES (?, ?, 'pending', ?, ?, ?) ON CONFLICT (channel, ts) DO NOTHING`, channel, ts, now, now, now)
	if err != nil {
		return 0, false, 0, err
	}
	n, _ := r.RowsAffected()
	if n == 1 && tx.d.postgres() {
		// A hint to the other replicas' deleters, sent at commit.
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify('`+HintWork+`', current_schema())`); err != nil {
			return 0, false, 0, err
		}
	}
	if err := tx.QueryRowContext(ctx, `SELECT id FROM deletions WHERE channel = ? AND ts = ?`, channel, ts).Scan(&id); err != nil {
		return 0, false, 0, err
	}
	r, err = tx.ExecContext(ctx,
		`UPDATE leaks SET deletion_id = ? WHERE channel = ? AND ts = ? AND deletion_id IS NULL AND action = 'delete' AND origin = 'history'`,
		id, channel, ts)
	if err != nil {
		return 0, false, 0, err
	}
	a, _ := r.RowsAffected()
	return id, n == 1, int(a), nil
}

// replaceEncoded replaces old with new in a notification's payload in
// every form an excerpt takes there: as it is, escaped for Slack's text
// (&amp; &lt; &gt;), and either of those inside a JSON string (where
// encoding/json writes & < > as \u0026 \u003c \u003e, and quotes and
// backslashes escaped).
func replaceEncoded(payload, old, new string) string {
	slack := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	jsonString := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b[1 : len(b)-1])
	}
	for _, form := range []func(string) string{
		func(s string) string { return jsonString(slack.Replace(s)) },
		func(s string) string { return jsonString(s) },
		slack.Replace,
		func(s string) string { return s },
	} {
		payload = strings.ReplaceAll(payload, form(old), form(new))
	}
	return payload
}
