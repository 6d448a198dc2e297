package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/store"
)

// daemonAlive is how recent a daemon's heartbeat must be for migrate to
// take it as running (daemons beat every 5 s with the default lease).
const daemonAlive = 30 * time.Second

type migrateOptions struct {
	to   string
	json bool
}

func newMigrateCmd(a *app) *cobra.Command {
	var o migrateOptions
	cmd := &cobra.Command{
		Use:   "migrate --to postgres://…",
		Short: "Copy the SQLite database into PostgreSQL, for replicas",
		Long: `Copy every row of the configured SQLite database (--db) into an empty PostgreSQL
database or schema: rules, allowlisted values, leaks, pending and held deletions,
notifications still to send, watermarks, catch-up windows and sweeps, with their ids.
The copy is one transaction (a failure leaves the target as it was), and the rows of
every table are then counted on both sides.

Stop the daemon first: what it records after the copy began is not copied. Then point
every replica at the target (db = "postgres://…" or SECURECHAT_DB) and start them.
The SQLite file is left as it was.

Exit status: 0 when every count matches, 2 otherwise (nothing is half-copied).`,
		Example: `  securechat migrate --to 'postgres://securechat@db.internal:5432/securechat?sslmode=require'
  securechat migrate --db /var/lib/securechat/securechat.db --to "$PG_URL" --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !store.IsPostgres(o.to) {
				return &hintError{err: fmt.Errorf("--to %q is not a PostgreSQL URL", store.Redact(o.to)),
					hint: "give one like postgres://USER@HOST:5432/DATABASE (the database must exist: createdb DATABASE)"}
			}
			if store.IsPostgres(a.cfg.DB) {
				return fmt.Errorf("the source (--db) is PostgreSQL already: migrate copies a SQLite file into PostgreSQL")
			}
			ctx := cmd.Context()
			src, err := a.openStore(ctx, openWrite)
			if err != nil {
				return err
			}
			defer src.Close()
			// What a running daemon records after the copy began would stay
			// behind in the SQLite file.
			if running, err := src.Running(ctx, daemonAlive); err != nil {
				return err
			} else if len(running) > 0 {
				return &hintError{err: fmt.Errorf("a daemon is running on %s (%s, last heartbeat %s ago): what it records after the copy began would not be copied",
					a.cfg.DB, running[0].ID, a.Now().Sub(running[0].Heartbeat).Round(time.Second)),
					hint: "stop it first (systemctl stop securechat, or Ctrl-C), then run migrate again; a daemon that was killed counts as stopped 30 s after its last heartbeat"}
			}
			dst, err := store.Open(ctx, o.to, store.WithClock(a.Now))
			if err != nil {
				return err
			}
			defer dst.Close()
			counts, err := src.CopyTo(ctx, dst)
			if err != nil {
				return err
			}
			if o.json {
				return writeJSON(a.Stdout, counts)
			}
			t := newTable(a.Stdout, "TABLE", "SQLITE", "POSTGRESQL")
			for _, c := range counts {
				t.row(c.Table, strconv.FormatInt(c.Source, 10), strconv.FormatInt(c.Target, 10))
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.Stdout, "Copied into %s; every count matches. Point every daemon at that URL (db in the config file, or %s) and start them.\n",
				store.Redact(o.to), EnvDB)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.to, "to", "", "the PostgreSQL database to copy into (postgres://…; it must hold no securechat data yet)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the counts as JSON")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}
