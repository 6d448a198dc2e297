package store

import (
	"context"
	"fmt"
	"time"
)

// StatRow counts leaks for one key (a rule, an action, a channel) over the
// last 24 hours, the last 7 days and all time.
type StatRow struct {
	Key     string `json:"key"`
	Label   string `json:"label,omitempty"` // the rule's description
	Last24h int    `json:"last_24h"`
	Last7d  int    `json:"last_7d"`
	Total   int    `json:"total"`
}

// LeakStats holds the counts leaks stats prints.
type LeakStats struct {
	ByRule    []StatRow `json:"by_rule"`
	ByAction  []StatRow `json:"by_action"`
	ByChannel []StatRow `json:"by_channel"`
}

// Stats counts leaks per rule, per action and per channel, busiest first.
// At most limit channels are returned (0: all).
func (s *Store) Stats(ctx context.Context, now time.Time, limit int) (LeakStats, error) {
	day, week := now.Add(-24*time.Hour).UnixMilli(), now.Add(-7*24*time.Hour).UnixMilli()
	query := func(keyExpr, labelExpr string, lim int) ([]StatRow, error) {
		q := fmt.Sprintf(`SELECT %s, %s, COUNT(*) FILTER (WHERE detected_at >= ?), COUNT(*) FILTER (WHERE detected_at >= ?), COUNT(*)
			FROM leaks GROUP BY 1 ORDER BY 3 DESC, 4 DESC, 5 DESC, 1`, keyExpr, labelExpr)
		args := []any{day, week}
		if lim > 0 {
			q += " LIMIT ?"
			args = append(args, lim)
		}
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("leak stats: %w", classify(err))
		}
		defer rows.Close()
		out := []StatRow{}
		for rows.Next() {
			var r StatRow
			if err := rows.Scan(&r.Key, &r.Label, &r.Last24h, &r.Last7d, &r.Total); err != nil {
				return nil, fmt.Errorf("leak stats: %w", err)
			}
			out = append(out, r)
		}
		return out, rows.Err()
	}
	var st LeakStats
	var err error
	if st.ByRule, err = query("CAST(regex_id AS TEXT)", "MAX(rule)", 0); err != nil {
		return st, err
	}
	if st.ByAction, err = query("action", "''", 0); err != nil {
		return st, err
	}
	if st.ByChannel, err = query("channel", "''", limit); err != nil {
		return st, err
	}
	return st, nil
}

// HitCounts returns how many leaks each regex has found, by regex id.
func (s *Store) HitCounts(ctx context.Context) (map[int64]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT regex_id, COUNT(*) FROM leaks GROUP BY regex_id`)
	if err != nil {
		return nil, fmt.Errorf("count hits: %w", classify(err))
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count hits: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}
