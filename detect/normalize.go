package detect

import "strings"

// Normalize turns the text of a Slack message as the API delivers it into the
// text the user typed, so that patterns see what a person sees:
//
//   - &amp; &lt; &gt; become & < >;
//   - <mailto:a@b.c|a@b.c> and <tel:4111-1111|4111-1111> become their label;
//   - a link whose target differs from its label keeps both, label first:
//     <https://x.example/?t=abc|label> becomes "label https://x.example/?t=abc"
//     and <tel:6759649826438453|6759 6498 2643 8453> becomes
//     "6759 6498 2643 8453 6759649826438453", since a secret can hide in
//     either form; <https://x.example> becomes the URL;
//   - <@U123>, <#C123|general> and <!here> become @U123, #general and @here.
//
// Text with neither '<' nor '&' is returned as it is, without allocating.
func Normalize(s string) string {
	if strings.IndexByte(s, '<') < 0 && strings.IndexByte(s, '&') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for len(s) > 0 {
		i := strings.IndexAny(s, "<&")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		if s[0] == '&' {
			s = writeEntity(&b, s)
			continue
		}
		end := strings.IndexByte(s, '>')
		if end < 0 {
			// An unterminated '<' is not a Slack control sequence: keep it.
			b.WriteByte('<')
			s = s[1:]
			continue
		}
		writeControl(&b, s[1:end])
		s = s[end+1:]
	}
	return b.String()
}

// writeEntity writes the character an entity at the start of s stands for and
// returns the rest of s. Slack escapes only these three.
func writeEntity(b *strings.Builder, s string) string {
	for _, e := range [...]struct{ name, char string }{{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}} {
		if strings.HasPrefix(s, e.name) {
			b.WriteString(e.char)
			return s[len(e.name):]
		}
	}
	b.WriteByte('&')
	return s[1:]
}

// writeControl writes the readable form of the inside of <...>.
func writeControl(b *strings.Builder, inner string) {
	target, label, hasLabel := strings.Cut(inner, "|")
	target, label = unescape(target), unescape(label)
	if target == "" {
		b.WriteString(label)
		return
	}
	switch target[0] {
	case '@', '#':
		// <@U123>, <@U123|bob>, <#C123|general>
		if hasLabel && label != "" {
			b.WriteByte(target[0])
			b.WriteString(strings.TrimLeft(label, "@#"))
			return
		}
		b.WriteString(target)
		return
	case '!':
		// <!here>, <!subteam^S123|@team>, <!date^1392734382^{date}|Feb 18>
		if hasLabel && label != "" {
			b.WriteString(label)
			return
		}
		name, _, _ := strings.Cut(target[1:], "^")
		b.WriteByte('@')
		b.WriteString(name)
		return
	}
	bare := target
	for _, scheme := range [...]string{"mailto:", "tel:"} {
		if strings.HasPrefix(bare, scheme) {
			bare = bare[len(scheme):]
			break
		}
	}
	if !hasLabel || label == "" || label == bare {
		b.WriteString(bare)
		return
	}
	b.WriteString(label)
	if sameLink(label, bare) {
		return
	}
	b.WriteByte(' ')
	b.WriteString(bare)
}

// sameLink reports whether label is only the auto-linked form of target, as
// in <http://example.com|example.com> or <https://a.b/|a.b/>.
func sameLink(label, target string) bool {
	for _, scheme := range [...]string{"https://", "http://"} {
		if rest, ok := strings.CutPrefix(target, scheme); ok {
			return rest == label || strings.TrimSuffix(rest, "/") == label
		}
	}
	return false
}

func unescape(s string) string {
	if strings.IndexByte(s, '&') < 0 {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = writeEntity(&b, s[i:])
	}
	return b.String()
}
