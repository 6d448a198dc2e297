package detect

import (
	"strings"
	"testing"
)

// slackEscape escapes text the way Slack delivers what a user typed.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// FuzzNormalizeScan checks, for arbitrary text around a planted card number,
// that normalisation never loses the card whatever Slack wraps around it, and
// that every reported match is well formed.
func FuzzNormalizeScan(f *testing.F) {
	for _, s := range []string{"", "hi <@U1>", "a &amp; b", "<https://x|y>", "&lt;&gt;", "<tel:1|2", "пароль", "\xff\xfe", "<<>>|&&;"} {
		f.Add(s, s, uint8(0))
	}
	set := mustCompile(f, maestro, `(?i)password\s*=\s*\S+`)
	const card = "6759649826438453"
	f.Fuzz(func(t *testing.T, before, after string, wrap uint8) {
		// Arbitrary raw input: must not panic, offsets must be sane.
		raw := before + after
		norm := Normalize(raw)
		for _, m := range set.Scan(raw) {
			if m.Start < 0 || m.End > len(norm) || m.Start >= m.End {
				t.Fatalf("match [%d,%d) outside normalised text of %d bytes", m.Start, m.End, len(norm))
			}
			if m.Excerpt != Mask(norm[m.Start:m.End]) {
				t.Fatalf("excerpt %q is not the mask of the match", m.Excerpt)
			}
			if strings.Contains(m.Excerpt, card) {
				t.Fatalf("excerpt %q reveals the card", m.Excerpt)
			}
		}
		if strings.IndexAny(raw, "<&") < 0 && norm != raw {
			t.Fatalf("Normalize changed plain text %q to %q", raw, norm)
		}
		// A user typed before + card + after; Slack escaped and maybe linked it.
		var planted string
		switch wrap % 4 {
		case 0:
			planted = card
		case 1:
			planted = "<tel:" + card + "|" + card + ">"
		case 2:
			planted = "<https://pay.example/?c=" + card + "|pay>"
		case 3:
			planted = "<mailto:" + card + "@x.io|" + card + "@x.io>"
		}
		msg := slackEscape(before) + " " + planted + " " + slackEscape(after)
		found := false
		for _, m := range set.Scan(msg) {
			if m.RuleID == 1 && strings.HasSuffix(m.Excerpt, "8453") {
				found = true
			}
		}
		if !found && !strings.ContainsAny(before+after, "0123456789") {
			t.Fatalf("card not found in %q (normalised %q)", msg, Normalize(msg))
		}
	})
}

// FuzzValidate checks that a pattern Validate accepts never yields an empty
// match, so no accepted rule can flag every message.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{maestro, `a*`, `\b`, `(?i)x+`, `[0-9]{3,}`, `(a|)b`, `^`, `(?m)$\n`, `\Bx?`} {
		f.Add(s, "some text 123 abc\nxyz")
	}
	f.Fuzz(func(t *testing.T, pattern, text string) {
		if Validate(pattern) != nil {
			return
		}
		re, _, err := compilePattern(pattern)
		if err != nil {
			t.Fatalf("Validate accepted %q but compilePattern failed: %v", pattern, err)
		}
		for _, loc := range re.FindAllStringIndex(text, -1) {
			if loc[0] == loc[1] {
				t.Fatalf("accepted pattern %q matched empty at %d in %q", pattern, loc[0], text)
			}
		}
	})
}

// FuzzReadPatterns checks that any input reads without panicking and yields
// only trimmed, non-comment lines.
func FuzzReadPatterns(f *testing.F) {
	f.Add("# c\nfoo\n\n bar \r\n")
	f.Fuzz(func(t *testing.T, in string) {
		ps, err := ReadPatterns(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Pattern == "" || strings.HasPrefix(p.Pattern, "#") || p.Pattern != strings.TrimSpace(p.Pattern) ||
				strings.Contains(p.Pattern, "\n") || p.Description != strings.TrimSpace(p.Description) || p.Line < 1 {
				t.Fatalf("ReadPatterns returned %+v", p)
			}
		}
	})
}
