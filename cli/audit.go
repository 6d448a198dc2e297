package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/store"
)

func newAuditCmd(a *app) *cobra.Command {
	var asJSON bool
	var target string
	var limit int
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show who changed what, from where and when (CLI and Slack)",
		Long: `Show the audit log, newest first: every change of a rule, an allowlisted value, a queued
deletion or a report, made from the CLI (os:USER) or from Slack (slack:U…, a button or
/securechat), and the noisy-rule flags securechat raised itself.`,
		Example: `  securechat audit
  securechat audit --target regex:7 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore(cmd.Context(), openRead)
			if err != nil {
				return err
			}
			defer s.Close()
			log, err := s.AuditLog(cmd.Context(), target, limit)
			if err != nil {
				return err
			}
			return printList(a, asJSON, log, "No changes recorded yet.", func(es []store.AuditEntry) error {
				t := newTable(a.Stdout, "ID", "WHEN", "WHO", "ACTION", "TARGET", "DETAIL")
				for _, e := range es {
					t.row(strconv.FormatInt(e.ID, 10), formatTime(e.At), e.Actor, e.Action, e.Target, e.Detail)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&target, "target", "", "only entries about this target (regex:7, leak:42)")
	cmd.Flags().IntVar(&limit, "limit", 50, "how many entries")
	return cmd
}
