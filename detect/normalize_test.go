package detect

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain text is untouched", "my card is 6759649826438453", "my card is 6759649826438453"},
		{"entities", "a &amp;&amp; b &lt;tag&gt; &amp;lt;", "a && b <tag> &lt;"},
		{"lone ampersand", "fish & chips &co", "fish & chips &co"},
		{"mailto label", "write to <mailto:a@b.c|a@b.c> now", "write to a@b.c now"},
		{"tel label keeps what was typed", "card <tel:4111-1111-1111-1111|4111-1111-1111-1111>", "card 4111-1111-1111-1111"},
		{"tel without label", "<tel:6759649826438453>", "6759649826438453"},
		{"tel label differs: both kept", "<tel:6759649826438453|6759 6498 2643 8453>", "6759 6498 2643 8453 6759649826438453"},
		{"mailto label differs", "<mailto:bob@corp.example.com|Bob>", "Bob bob@corp.example.com"},
		{"auto-linked host", "see <http://example.com|example.com>", "see example.com"},
		{"auto-linked with slash", "see <https://example.com/|example.com/>", "see example.com/"},
		{"bare url", "<https://hooks.slack.com/services/T0/B0/XXXX>", "https://hooks.slack.com/services/T0/B0/XXXX"},
		{"label differs: both kept", "<https://x.io/?token=abc|click here>", "click here https://x.io/?token=abc"},
		{"escaped query in url", "<https://x.io/?a=1&amp;key=SECRET>", "https://x.io/?a=1&key=SECRET"},
		{"user mention", "hi <@U0123ABC> and <@U9|bob>", "hi @U0123ABC and @bob"},
		{"channel mention", "in <#C024BE7LR|general>", "in #general"},
		{"special mention", "<!here> <!channel> <!subteam^S1|@oncall>", "@here @channel @oncall"},
		{"date with fallback", "<!date^1392734382^{date}|Feb 18, 2014>", "Feb 18, 2014"},
		{"unterminated bracket kept", "a < b", "a < b"},
		{"empty", "", ""},
		{"non-ASCII", "contraseña &amp; пароль <@U1>", "contraseña & пароль @U1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Normalize(tt.in); got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizePlainDoesNotAllocate(t *testing.T) {
	s := strings.Repeat("nothing to see here ", 50)
	if n := testing.AllocsPerRun(100, func() { _ = Normalize(s) }); n != 0 {
		t.Errorf("Normalize of plain text allocated %v times", n)
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"6759649826438453", "************8453"},
		{"4111 1111 1111 1111", "***************1111"},
		{"676100041090", "********1090"},
		{"Winter2026!x", "************"},
		{"abcd", "****"},
		{"", ""},
		{"Tr0ub4dor&3x-horse", "Tr**************se"},
		{"AKIAIOSFODNN7EXAMPLE", "AK****************LE"},
		{"AKIAIOSFODNN7EXAMPLEAKIAIOSFODNN7EXAMPLE", "AK****************…LE"},
		{"ключ-секрет-12345", "кл*************45"},
	}
	for _, tt := range tests {
		if got := Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := Mask("ab\ncdefghijk\tlmnopq\t"); strings.ContainsAny(got, "\n\t") {
		t.Errorf("Mask kept control characters: %q", got)
	}
	if got := Mask("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"); !utf8.ValidString(got) {
		t.Errorf("Mask of invalid UTF-8 returned invalid UTF-8 %q", got)
	}
	if got := Hide("6759649826438453"); got != "****************" {
		t.Errorf("Hide = %q", got)
	}
}

// TestRemask re-masks excerpts of the previous policy (4+4 from 16
// characters, a sixth at either end below): it hides more, never reveals.
func TestRemask(t *testing.T) {
	tests := []struct{ old, want string }{
		{"6759********8453", "************8453"},
		{"67********90", "**********90"},
		{"AKIA************MPL2", "AK****************L2"},
		{"Wi********!x", "************"},
		{"AKIA****************…MPLE", "AK****************…LE"},
		{"****", "****"},
	}
	for _, tt := range tests {
		got := Remask(tt.old)
		if got != tt.want {
			t.Errorf("Remask(%q) = %q, want %q", tt.old, got, tt.want)
		}
		if Remask(got) != got {
			t.Errorf("Remask is not stable on %q", got)
		}
	}
}

// TestMaskNeverRevealsMost checks the masking promise on every length and
// shape: a card number's last four digits only, anything else never more
// than a quarter and at most four characters.
func TestMaskNeverRevealsMost(t *testing.T) {
	for n := 0; n <= 200; n++ {
		for _, c := range []string{"x", "7"} {
			secret := strings.Repeat(c, n)
			m := Mask(secret)
			shown := strings.Count(m, c)
			if c == "7" && n >= 12 && n <= 19 {
				// A card number: its last four digits, and nothing else.
				if shown != 4 || !strings.HasSuffix(m, "7777") {
					t.Errorf("Mask of a %d-digit number = %q, want its last four only", n, m)
				}
				continue
			}
			if shown > n/4 || shown > 4 {
				t.Errorf("Mask of %d %q characters shows %d of them", n, c, shown)
			}
		}
	}
}
