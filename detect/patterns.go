package detect

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PatternLine is one pattern of a plain pattern list.
type PatternLine struct {
	Line        int    // 1-based line number in the list
	Pattern     string // as written, surrounding spaces trimmed
	Description string // what follows a tab on the line, trimmed; may be empty
}

// maxListLine bounds one line of a pattern list: a pattern of MaxPatternLen
// bytes, a tab and a description.
const maxListLine = MaxPatternLen + 1024

// ReadPatterns reads a plain pattern list: one pattern per line, optionally
// followed by a tab and a description; blank lines and lines starting with
// '#' are skipped, surrounding spaces and a trailing "\r" trimmed. Patterns
// are returned as written, not validated. It returns an error naming the
// line for a line longer than a pattern of MaxPatternLen and its
// description.
func ReadPatterns(r io.Reader) ([]PatternLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxListLine)
	var out []PatternLine
	line := 0
	for sc.Scan() {
		line++
		pattern, desc, _ := strings.Cut(sc.Text(), "\t")
		pattern = strings.TrimSpace(pattern)
		if pattern == "" || strings.HasPrefix(pattern, "#") {
			continue
		}
		out = append(out, PatternLine{Line: line, Pattern: pattern, Description: strings.TrimSpace(desc)})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("read patterns: line %d is longer than %d bytes (a pattern may be at most %d)", line+1, maxListLine, MaxPatternLen)
		}
		return nil, fmt.Errorf("read patterns: after line %d: %w", line, err)
	}
	return out, nil
}
