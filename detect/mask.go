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

// maxJoint is how many distinct values MaskJointly compares pairwise; a
// message with more is a dump of secrets, and every one of them is hidden.
const maxJoint = 64

// MaskJointly decides which of a message's findings must be hidden
// entirely (Hide) rather than masked (Mask), so that their excerpts taken
// together reveal no more of any value than one excerpt would. Two
// findings whose values differ reveal more together when one value is
// inside the other, or one ends with what the other begins with (the same
// secret matched whole by one rule and in part by another, where it appears
// twice, or decoded from one segment): both are hidden. Equal values (once
// spaces and dashes are dropped) mask to the same excerpt and stay masked.
// secrets are the findings' secrets (Match.Secret); hide[i] is the answer
// for secrets[i].
func MaskJointly(secrets []string) (hide []bool) {
	hide = make([]bool, len(secrets))
	if len(secrets) < 2 {
		return hide
	}
	canon := make([]string, len(secrets))
	index := map[string]int{} // distinct value → its position in values
	var values []string
	for i, s := range secrets {
		canon[i] = CanonicalValue(s)
		if _, ok := index[canon[i]]; !ok {
			index[canon[i]] = len(values)
			values = append(values, canon[i])
		}
	}
	if len(values) < 2 {
		return hide
	}
	related := make([]bool, len(values))
	if len(values) > maxJoint {
		for i := range related {
			related[i] = true
		}
	} else {
		for i := range values {
			for j := i + 1; j < len(values); j++ {
				if relatedValues(values[i], values[j]) {
					related[i], related[j] = true, true
				}
			}
		}
	}
	for i := range secrets {
		hide[i] = related[index[canon[i]]]
	}
	return hide
}

// minJointOverlap is the shortest overlap of two values' ends that counts
// as the same text: what a mask shows of a value (four characters) at most.
const minJointOverlap = 4

// relatedValues reports whether a and b can be parts of one text: one holds
// the other, or an end of one is the other's start.
func relatedValues(a, b string) bool {
	if strings.Contains(a, b) || strings.Contains(b, a) {
		return true
	}
	return endsOverlap(a, b) || endsOverlap(b, a)
}

// endsOverlap reports whether a ends with a start of b of at least
// minJointOverlap bytes, in time linear in their lengths (the longest such
// overlap, by Knuth-Morris-Pratt's prefix function of b run over a).
func endsOverlap(a, b string) bool {
	if len(b) == 0 {
		return false
	}
	fail := make([]int, len(b)) // fail[i]: the longest proper prefix of b[:i+1] that is also its suffix
	for i, k := 1, 0; i < len(b); i++ {
		for k > 0 && b[i] != b[k] {
			k = fail[k-1]
		}
		if b[i] == b[k] {
			k++
		}
		fail[i] = k
	}
	j := 0 // the longest prefix of b that ends where a has been read to
	for i := 0; i < len(a); i++ {
		for j > 0 && (j == len(b) || a[i] != b[j]) {
			j = fail[j-1]
		}
		if a[i] == b[j] {
			j++
		}
	}
	return j >= minJointOverlap
}
