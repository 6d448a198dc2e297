package cli

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/store"
)

func newRegexCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "regex",
		Aliases: []string{"regexes", "rule", "rules"},
		Short:   "Manage the patterns messages are matched against",
		Long: `Manage the regular expressions securechat matches messages against.

Patterns use Go's RE2 syntax (https://github.com/google/re2/wiki/Syntax): no lookaround,
no backreferences, and matching time is linear in the message length. A running daemon
picks up changes within a couple of seconds, no restart needed.`,
	}
	cmd.AddCommand(newRegexAddCmd(a), newRegexListCmd(a), newRegexRmCmd(a),
		newRegexEnableCmd(a, true), newRegexEnableCmd(a, false))
	return cmd
}

type regexAddOptions struct {
	description string
	json        bool
}

func newRegexAddCmd(a *app) *cobra.Command {
	var o regexAddOptions
	cmd := &cobra.Command{
		Use:   "add PATTERN",
		Short: "Add a pattern and print its id",
		Long: `Add a pattern. It is checked first: a pattern that does not compile, or that can match
the empty string (and so would delete every message), is refused with the reason.

The new id is printed on stdout, so scripts can keep it: id=$(securechat regex add ...).`,
		Example: `  securechat regex add '.*(5018|5020|5038|6304|6759|6761|6763)[0-9]{8,15}.*' --description "Maestro cards"
  securechat regex add 'AKIA[A-Z2-7]{16}' -d "AWS access key id"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := args[0]
			if err := detect.Validate(pattern); err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer s.Close()
			r, err := s.AddRegex(cmd.Context(), pattern, o.description)
			if err != nil {
				var dup *store.DuplicateError
				if errors.As(err, &dup) {
					return fmt.Errorf("%w: see it with 'securechat regex list'", err)
				}
				return err
			}
			if o.json {
				return writeJSON(a.Stdout, r)
			}
			fmt.Fprintln(a.Stdout, r.ID)
			fmt.Fprintf(a.Stderr, "Added regex %d.\n", r.ID)
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.description, "description", "d", "", "what the pattern finds (shown in leaks and logs)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the new regex as JSON")
	return cmd
}

func newRegexListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the patterns",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer s.Close()
			rs, err := s.Regexes(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if rs == nil {
					rs = []store.Regex{}
				}
				return writeJSON(a.Stdout, rs)
			}
			if len(rs) == 0 {
				fmt.Fprintln(a.Stderr, "No regexes yet. Add one with: securechat regex add PATTERN --description TEXT")
				return nil
			}
			t := newTable(a.Stdout, "ID", "PATTERN", "DESCRIPTION", "ENABLED", "UPDATED")
			for _, r := range rs {
				enabled := "yes"
				if !r.Enabled {
					enabled = "no"
				}
				t.row(strconv.FormatInt(r.ID, 10), truncate(r.Pattern, 60), truncate(r.Description, 40), enabled, formatTime(r.UpdatedAt))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (an array of objects)")
	return cmd
}

func parseIDs(args []string) ([]int64, error) {
	ids := make([]int64, len(args))
	for i, s := range args {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("%q is not a regex id (ids are positive numbers; see 'securechat regex list')", s)
		}
		ids[i] = id
	}
	return ids, nil
}

func newRegexRmCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove patterns",
		Long: `Remove patterns by id. Leaks they found stay in the log with the regex's id and
description. Every id is tried; the command fails if any of them did not exist.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args)
			if err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer s.Close()
			var errs []error
			for _, id := range ids {
				if err := s.DeleteRegex(cmd.Context(), id); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(a.Stderr, "Removed regex %d.\n", id)
			}
			return errors.Join(errs...)
		},
	}
}

func newRegexEnableCmd(a *app, enable bool) *cobra.Command {
	use, short, done := "enable ID...", "Enable patterns", "Enabled"
	if !enable {
		use, short, done = "disable ID...", "Disable patterns without removing them", "Disabled"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args)
			if err != nil {
				return err
			}
			s, err := a.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer s.Close()
			var errs []error
			for _, id := range ids {
				if err := s.SetRegexEnabled(cmd.Context(), id, enable); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(a.Stderr, "%s regex %d.\n", done, id)
			}
			return errors.Join(errs...)
		},
	}
}
