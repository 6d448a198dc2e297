package detect

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxStars caps the masked middle so that a private-key block does not turn
// into a line of a thousand stars.
const maxStars = 16

// Mask returns a form of a matched secret that is safe to store and log:
// four characters at either end of a match of 16 or more ("6759649826438453"
// becomes "6759********8453", as card receipts show), at most a sixth at
// either end of a shorter one ("676100041090" becomes "67********90", a
// 12-character password shows 2+2), nothing of fewer than six; stars in
// between. Control characters at the ends are shown as spaces, and invalid
// UTF-8 as U+FFFD.
func Mask(secret string) string {
	if !utf8.ValidString(secret) {
		secret = strings.ToValidUTF8(secret, "\uFFFD")
	}
	r := []rune(secret)
	n := len(r)
	keep := n / 6
	if n >= 16 {
		keep = 4
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
