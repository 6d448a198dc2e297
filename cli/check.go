package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/detect"
)

type checkOptions struct {
	json  bool
	slack bool
}

// checkHit is one line of `check --json`.
type checkHit struct {
	Line        int    `json:"line"`
	RegexID     int64  `json:"regex_id"`
	Description string `json:"description"`
	Excerpt     string `json:"excerpt"`
	Start       int    `json:"start"`
	End         int    `json:"end"`
}

func newCheckCmd(a *app) *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check [TEXT...]",
		Short: "Scan text with the current patterns, without Slack",
		Long: `Scan text with the enabled patterns, exactly as the daemon would, and print each hit
with a masked excerpt. Each TEXT argument is one message; with no arguments, every line
of stdin is one message.

Exit status: 0 when nothing leaks, 1 when something does, 2 on error, so check can
guard scripts, commit hooks and CI pipelines.`,
		Example: `  securechat check "my card is 6759649826438453"
  git diff --cached | securechat check && git commit
  securechat check --json < messages.txt | jq .regex_id`,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			set, err := loadRuleSet(cmd, a, s)
			s.Close()
			if err != nil {
				return err
			}
			return runCheck(a, o, set, args)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print one JSON object per hit (JSON lines)")
	cmd.Flags().BoolVar(&o.slack, "slack", false, "treat input as Slack API text (&amp; escapes, <links|labels>) and normalise it first")
	return cmd
}

func runCheck(a *app, o checkOptions, set *detect.Set, args []string) error {
	out := bufio.NewWriter(a.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	hits := 0
	scan := func(line int, text string) error {
		var matches []detect.Match
		if o.slack {
			matches = set.Scan(text)
		} else {
			matches = set.ScanNormalized(text)
		}
		for _, m := range matches {
			hits++
			if o.json {
				if err := enc.Encode(checkHit{Line: line, RegexID: m.RuleID, Description: m.Description, Excerpt: m.Excerpt, Start: m.Start, End: m.End}); err != nil {
					return err
				}
				continue
			}
			desc := ""
			if m.Description != "" {
				desc = " (" + m.Description + ")"
			}
			fmt.Fprintf(out, "line %d: regex %d%s: %s\n", line, m.RuleID, desc, m.Excerpt)
		}
		return nil
	}
	if len(args) > 0 {
		for i, text := range args {
			if err := scan(i+1, text); err != nil {
				return err
			}
		}
	} else {
		r := bufio.NewReaderSize(a.Stdin, 64*1024)
		for line := 1; ; line++ {
			text, err := r.ReadString('\n')
			if len(text) > 0 {
				if err := scan(line, strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r")); err != nil {
					return err
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if hits > 0 {
		return errLeaksFound
	}
	return nil
}
