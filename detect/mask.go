package detect

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxStars caps the masked middle so that a private-key block does not turn
// into a line of a thousand stars.
const maxStars = 16

// Mask returns a form of a matched secret that is safe to store and log: at
// most a quarter of it, and never more than four characters, at either end;
// stars in between. "6759649826438453" becomes "6759********8453"; anything of
// fewer than eight characters is all stars. Control characters at the ends are
// shown as spaces, and invalid UTF-8 as U+FFFD.
func Mask(secret string) string {
	if !utf8.ValidString(secret) {
		secret = strings.ToValidUTF8(secret, "\uFFFD")
	}
	r := []rune(secret)
	n := len(r)
	keep := min(4, n/4)
	if n < 8 {
		keep = 0
	}
	var b strings.Builder
	writeVisible(&b, r[:keep])
	middle := n - 2*keep
	if middle > maxStars {
		b.WriteString(strings.Repeat("*", maxStars))
		b.WriteString("…")
	} else {
		b.WriteString(strings.Repeat("*", middle))
	}
	writeVisible(&b, r[n-keep:])
	return b.String()
}

func writeVisible(b *strings.Builder, rs []rune) {
	for _, c := range rs {
		if unicode.IsControl(c) || !unicode.IsPrint(c) && c != ' ' {
			c = ' '
		}
		b.WriteRune(c)
	}
}
