package detect

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxStars caps the masked middle so that a private-key block does not turn
// into a line of a thousand stars.
const maxStars = 16

// Mask returns a form of a matched secret that is safe to store, log and
// post. It never shows more than a quarter of the secret:
//
//   - a card-like number (12 to 19 digits, spaces and dashes aside) shows
//     its last four digits only, as card receipts do: "************8453";
//   - anything else of 16 characters or more shows two at either end
//     ("AK****************L2"), and anything shorter shows nothing: a
//     12-character password is "************".
//
// Stars stand for the rest, at most 16 of them and then "…". Control
// characters that would be shown become spaces, invalid UTF-8 U+FFFD.
func Mask(secret string) string {
	if !utf8.ValidString(secret) {
		secret = strings.ToValidUTF8(secret, "\uFFFD")
	}
	return mask([]rune(secret), func(int) bool { return false })
}

// Remask applies the current policy to an excerpt an earlier release
// masked: positions already hidden ('*', '…') stay hidden, so it can only
// hide more, never reveal.
func Remask(excerpt string) string {
	r := []rune(excerpt)
	return mask(r, func(i int) bool { return r[i] == '*' || r[i] == '…' })
}

// Hide returns the secret fully masked: stars only (capped as Mask caps
// them). Findings whose spans overlap are shown this way, so that two
// masks of one secret cannot together reveal more than one does.
func Hide(secret string) string {
	n := utf8.RuneCountInString(secret)
	if n > maxStars {
		return strings.Repeat("*", maxStars) + "…"
	}
	return strings.Repeat("*", n)
}

// mask masks r by the policy; hidden says which positions are hidden
// already.
func mask(r []rune, hidden func(int) bool) string {
	n := len(r)
	show := make([]bool, n)
	if digits := cardDigits(r, hidden); digits != nil {
		for _, i := range digits[len(digits)-4:] {
			show[i] = true
		}
	} else if n >= 16 {
		for _, i := range []int{0, 1, n - 2, n - 1} {
			show[i] = true
		}
	}
	var b strings.Builder
	stars := 0
	for i, c := range r {
		if !show[i] || hidden(i) {
			if stars < maxStars {
				b.WriteByte('*')
			} else if stars == maxStars {
				b.WriteString("…")
			}
			stars++
			continue
		}
		stars = min(stars, maxStars) // a visible end after a capped middle
		if unicode.IsControl(c) || !unicode.IsPrint(c) && c != ' ' {
			c = ' '
		}
		b.WriteRune(c)
	}
	return b.String()
}

// cardDigits returns the positions of the digits of a card-like number (12
// to 19 digits, with spaces or dashes between them and nothing else), or nil.
// A hidden position counts as a digit.
func cardDigits(r []rune, hidden func(int) bool) []int {
	var pos []int
	for i, c := range r {
		switch {
		case hidden(i) || (c >= '0' && c <= '9'):
			pos = append(pos, i)
		case c == ' ' || c == '-':
		default:
			return nil
		}
	}
	if len(pos) < 12 || len(pos) > 19 {
		return nil
	}
	return pos
}
