package detect

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ReadPatterns reads a plain pattern list: one pattern per line, blank lines
// and lines starting with '#' skipped, surrounding spaces and a trailing "\r"
// trimmed. Patterns are returned as written, not validated. It returns an
// error naming the line for a line longer than MaxPatternLen.
func ReadPatterns(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxPatternLen+2)
	var out []string
	for line := 1; sc.Scan(); line++ {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read patterns: line %d: %w", len(out)+1, err)
	}
	return out, nil
}
