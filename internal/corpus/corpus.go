// Package corpus generates realistic, deterministic Slack message text for
// benchmarks and load tests: chat lines with mentions, links, emoji and
// numbers, some non-ASCII, a few code and log pastes of 2–30 KB, and a
// configurable share of messages carrying a planted secret. Text comes out as
// the Slack API delivers it (escaped and auto-linked).
package corpus

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Message is one generated message.
type Message struct {
	Text string
	// Secret is the planted secret's kind ("" when none was planted).
	Secret string
}

// Options tune the generator. Zero values take the defaults in brackets.
type Options struct {
	Seed        uint64  // [1]
	SecretShare float64 // share of messages with a planted secret [0.03]
	PasteShare  float64 // share of 2–30 KB code/log pastes [0.01]
}

// Generator produces messages. It is not safe for concurrent use.
type Generator struct {
	rnd  *rand.Rand
	opts Options
}

// New returns a generator; the same options give the same messages.
func New(o Options) *Generator {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.SecretShare == 0 {
		o.SecretShare = 0.03
	}
	if o.PasteShare == 0 {
		o.PasteShare = 0.01
	}
	return &Generator{rnd: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), opts: o}
}

// Messages returns the next n messages.
func (g *Generator) Messages(n int) []Message {
	out := make([]Message, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

// Next returns the next message.
func (g *Generator) Next() Message {
	var m Message
	var b strings.Builder
	if g.rnd.Float64() < g.opts.PasteShare {
		g.paste(&b)
	} else {
		g.chat(&b)
	}
	if g.rnd.Float64() < g.opts.SecretShare {
		kind, secret := g.secret()
		m.Secret = kind
		text := b.String()
		cut := g.rnd.IntN(len(text) + 1)
		for cut < len(text) && text[cut] != ' ' && text[cut] != '\n' {
			cut++
		}
		b.Reset()
		b.WriteString(text[:cut])
		b.WriteByte(' ')
		b.WriteString(secret)
		b.WriteByte(' ')
		b.WriteString(text[cut:])
	}
	m.Text = b.String()
	return m
}

var words = strings.Fields(`the a to and of we is it for on that this deploy build release ticket
review meeting lunch today tomorrow please thanks can you check merge branch fix bug prod staging
customer invoice report dashboard metrics latency error cache queue service database migration
ok sure sounds good let me know looks great will do done shipped rollback alert pager oncall
team sprint standup retro roadmap design spec doc draft feedback ship it ETA EOD asap`)

var nonASCII = strings.Fields(`café naïve déjà über straße Ærø smörgåsbord Zürich São año niño
привет спасибо пароль 你好 谢谢 会议 こんにちは ありがとう 안녕하세요 مرحبا שלום Γειά σου 🎉 👍 🚀 ✅ 🙏`)

var emoji = []string{":tada:", ":+1:", ":eyes:", ":white_check_mark:", ":fire:", ":rocket:", ":thinking_face:", ":pray:"}

var hosts = []string{"github.com/acme/api/pull/", "jira.acme.io/browse/OPS-", "docs.google.com/document/d/1x", "grafana.acme.io/d/", "acme.atlassian.net/wiki/spaces/ENG/pages/"}

func (g *Generator) chat(b *strings.Builder) {
	n := 3 + g.rnd.IntN(25)
	if g.rnd.IntN(10) == 0 {
		n += 40 + g.rnd.IntN(80)
	}
	foreign := g.rnd.IntN(100) < 9
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch r := g.rnd.IntN(100); {
		case r < 5:
			fmt.Fprintf(b, "<@U%08X>", g.rnd.Uint32())
		case r < 7:
			fmt.Fprintf(b, "<#C%08X|%s>", g.rnd.Uint32(), words[g.rnd.IntN(len(words))])
		case r < 10:
			h := hosts[g.rnd.IntN(len(hosts))]
			id := g.rnd.IntN(100000)
			if g.rnd.IntN(2) == 0 {
				fmt.Fprintf(b, "<https://%s%d>", h, id)
			} else {
				fmt.Fprintf(b, "<https://%s%d|%s>", h, id, words[g.rnd.IntN(len(words))])
			}
		case r < 13:
			b.WriteString(emoji[g.rnd.IntN(len(emoji))])
		case r < 17:
			fmt.Fprintf(b, "%d", g.rnd.IntN(100000))
		case r < 18:
			b.WriteString("&amp;")
		case r < 19:
			fmt.Fprintf(b, "v%d.%d.%d", g.rnd.IntN(5), g.rnd.IntN(20), g.rnd.IntN(50))
		case foreign && r < 45:
			b.WriteString(nonASCII[g.rnd.IntN(len(nonASCII))])
		default:
			b.WriteString(words[g.rnd.IntN(len(words))])
		}
	}
}

func (g *Generator) paste(b *strings.Builder) {
	size := 2048 + g.rnd.IntN(28*1024)
	b.WriteString("```")
	for b.Len() < size {
		switch g.rnd.IntN(3) {
		case 0:
			fmt.Fprintf(b, "2026-11-%02dT%02d:%02d:%02d.%03dZ INFO  [worker-%d] request_id=%016x method=GET path=/api/v1/items/%d status=200 duration_ms=%d\n",
				1+g.rnd.IntN(28), g.rnd.IntN(24), g.rnd.IntN(60), g.rnd.IntN(60), g.rnd.IntN(1000), g.rnd.IntN(16), g.rnd.Uint64(), g.rnd.IntN(1e6), g.rnd.IntN(900))
		case 1:
			fmt.Fprintf(b, "    at com.acme.service.%sHandler.handle(%sHandler.java:%d)\n", title(words[g.rnd.IntN(len(words))]), title(words[g.rnd.IntN(len(words))]), g.rnd.IntN(900))
		default:
			fmt.Fprintf(b, "func (s *%s) %s(ctx context.Context, id int64) error { return s.db.ExecContext(ctx, \"UPDATE t SET n = n + 1 WHERE id = ?\", id) }\n",
				title(words[g.rnd.IntN(len(words))]), title(words[g.rnd.IntN(len(words))]))
		}
	}
	b.WriteString("```")
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func (g *Generator) rand(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.rnd.IntN(len(alphabet))]
	}
	return string(b)
}

// secret returns a planted secret's kind and its text as Slack delivers it.
func (g *Generator) secret() (string, string) {
	switch g.rnd.IntN(10) {
	case 0:
		return "aws", "AKIA" + g.rand(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
	case 1:
		return "github", "ghp_" + g.rand(36, alnum)
	case 2:
		return "slack", fmt.Sprintf("xoxb-%d-%d-%s", 1000000000+g.rnd.IntN(1e9), 1000000000+g.rnd.IntN(1e9), g.rand(24, alnum))
	case 3:
		return "maestro", []string{"6759649826438453", "676100041090", "<tel:6759649826438453|6759 6498 2643 8453>"}[g.rnd.IntN(3)]
	case 4:
		return "visa", "4111 1111 1111 1111"
	case 5:
		return "private-key", "-----BEGIN RSA PRIVATE KEY-----\n" + g.rand(64, alnum) + "\n" + g.rand(64, alnum) + "\n-----END RSA PRIVATE KEY-----"
	case 6:
		return "jwt", "eyJhbGciOiJIUzI1NiJ9.eyJ" + g.rand(40, alnum) + "." + g.rand(43, alnum)
	case 7:
		return "password", "db_password = " + g.rand(14, alnum)
	case 8:
		return "stripe", "sk_live_" + g.rand(24, alnum)
	default:
		return "ssn", fmt.Sprintf("%03d-%02d-%04d", 100+g.rnd.IntN(600), 10+g.rnd.IntN(89), 1000+g.rnd.IntN(8999))
	}
}
