package detect

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
)

// ordinaryChat is a sample of ordinary chat with no secret in it (chat
// lines as Slack delivers them: mentions, links, emoji, numbers, dates),
// shipped with the binary: a rule that flags more than MaxBreadth of it
// would flag, and delete, a good part of every workspace's messages.
//
//go:embed ordinary_chat.txt
var ordinaryChat string

// MaxBreadth is the largest share of the ordinary-chat sample a rule may
// flag without --force: a real secret's pattern flags none of it.
const MaxBreadth = 0.02

// OrdinaryChat returns the ordinary-chat sample's lines, normalised (once:
// an import weighs every rule against them).
var OrdinaryChat = sync.OnceValue(func() []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(ordinaryChat), "\n") {
		out = append(out, Normalize(l))
	}
	return out
})

// Breadth returns the share of the ordinary-chat sample that a rule flags,
// with its checks (validator, entropy, allowlists…) applied.
func Breadth(r Rule) (float64, error) {
	set, errs := Compile([]Rule{r})
	if len(errs) > 0 {
		return 0, errs[0]
	}
	lines := OrdinaryChat()
	n := 0
	for _, l := range lines {
		if len(set.ScanNormalized(l)) > 0 {
			n++
		}
	}
	return float64(n) / float64(len(lines)), nil
}

// BreadthError is returned for a rule that flags more than MaxBreadth of
// the ordinary-chat sample.
type BreadthError struct {
	Share float64
	Lines int
}

func (e *BreadthError) Error() string {
	return fmt.Sprintf("it flags %.0f%% of %d lines of ordinary chat (securechat's sample, no secret in it), so it would delete ordinary messages; "+
		"make it match only what the secret looks like (a prefix, a length: 'AKIA[A-Z2-7]{16}'), or add it with --force if you mean it",
		100*e.Share, e.Lines)
}

// CheckBreadth returns a *BreadthError for a rule that flags more than
// MaxBreadth of the ordinary-chat sample.
func CheckBreadth(r Rule) error {
	share, err := Breadth(r)
	if err != nil {
		return err
	}
	if share > MaxBreadth {
		return &BreadthError{Share: share, Lines: len(OrdinaryChat())}
	}
	return nil
}
