package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/store"
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
		Long: `Scan text with the enabled patterns, exactly as the daemon would (allowlisted values
included, when the allowlist secret is set), and print each hit with a masked excerpt. Each TEXT argument is one message; with no arguments, every line
of stdin is one message. Lines are scanned on every core, and reported in order.

Exit status: 0 when nothing leaks, 1 when something does, 2 on error, so check can
guard scripts, commit hooks and CI pipelines.`,
		Example: `  securechat check "my card is 6759649826438453"
  git diff --cached | securechat check && git commit
  securechat check --json < messages.txt | jq .regex_id`,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore(cmd.Context(), openRead)
			if err != nil {
				return err
			}
			snap, err := a.loadSnapshot(cmd.Context(), s)
			s.Close()
			if err != nil {
				return err
			}
			return runCheck(a, o, snap, args)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print one JSON object per hit (JSON lines)")
	cmd.Flags().BoolVar(&o.slack, "slack", false, "treat input as Slack API text (&amp; escapes, <links|labels>) and normalise it first")
	return cmd
}

// maxCheckLine bounds one line of check's input: a Slack message is at most
// 40,000 characters (up to 4 bytes each), with room for pastes of API text.
const maxCheckLine = 1 << 20

// checkBatch is how many lines check reads before scanning them in
// parallel; it bounds the memory a huge stdin takes.
const checkBatch = 2048

func runCheck(a *app, o checkOptions, snap *ruleset.Snapshot, args []string) error {
	out := bufio.NewWriter(a.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	hits := 0
	scan := func(text string) []store.Finding {
		if o.slack {
			text = detect.Normalize(text)
		}
		return snap.Decide(text, false).Findings
	}
	// report prints one batch's findings in line order.
	report := func(first int, results [][]store.Finding) error {
		for i, findings := range results {
			line := first + i
			for _, f := range findings {
				hits++
				if o.json {
					if err := enc.Encode(checkHit{Line: line, RegexID: f.RegexID, Description: f.Rule, Excerpt: f.Excerpt, Start: f.Start, End: f.End}); err != nil {
						return err
					}
					continue
				}
				desc := ""
				if f.Rule != "" {
					desc = " (" + f.Rule + ")"
				}
				fmt.Fprintf(out, "line %d: regex %d%s: %s\n", line, f.RegexID, desc, f.Excerpt)
			}
		}
		return nil
	}
	if len(args) > 0 {
		if err := report(1, scanParallel(args, scan)); err != nil {
			return err
		}
	} else {
		sc := bufio.NewScanner(a.Stdin)
		sc.Buffer(make([]byte, 0, 64*1024), maxCheckLine)
		first := 1
		batch := make([]string, 0, checkBatch)
		for eof := false; !eof; {
			if sc.Scan() {
				batch = append(batch, strings.TrimSuffix(sc.Text(), "\r"))
			} else {
				eof = true
				if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
					return &hintError{err: fmt.Errorf("line %d of stdin is longer than %d bytes: nothing from it on was checked", first+len(batch), maxCheckLine),
						hint: "check reads one message per line, and a Slack message holds at most 40,000 characters: split the input into lines"}
				} else if err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
			}
			if len(batch) == checkBatch || (eof && len(batch) > 0) {
				if err := report(first, scanParallel(batch, scan)); err != nil {
					return err
				}
				first += len(batch)
				batch = batch[:0]
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

// scanParallel scans texts on every core and returns the findings in input
// order.
func scanParallel(texts []string, scan func(string) []store.Finding) [][]store.Finding {
	results := make([][]store.Finding, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(texts) {
					return
				}
				results[i] = scan(texts[i])
			}
		})
	}
	wg.Wait()
	return results
}
