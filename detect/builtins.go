package detect

import "slices"

// Builtin is a curated rule shipped with securechat, with samples that a
// test runs: every MustMatch must yield a finding, no MustNotMatch may.
type Builtin struct {
	Name         string
	Description  string
	Pattern      string
	Validator    string
	SecretGroup  int
	Entropy      float64
	Keywords     []string
	Allow        []string
	Stopwords    []string
	MustMatch    []string
	MustNotMatch []string
}

// Rule returns the builtin as a rule with the given id.
func (b Builtin) Rule(id int64) Rule {
	return Rule{ID: id, Pattern: b.Pattern, Description: b.Description, Validator: b.Validator,
		SecretGroup: b.SecretGroup, Entropy: b.Entropy, Keywords: b.Keywords, AllowPatterns: b.Allow, Stopwords: b.Stopwords}
}

// placeholders are values people write where a secret would go.
var placeholders = []string{`^\*+$`, `^x+$`, `^\.+$`, `^<[^>]*>$`, `^\$\{[^}]*\}$`, `^\{\{[^}]*\}\}$`, `^%[A-Za-z_]+%$`, `^\$[A-Z_]+$`}

// Builtins returns the curated rule pack, by name.
func Builtins() []Builtin {
	return []Builtin{
		{
			Name:        "aws-access-key-id",
			Description: "AWS access key id",
			Pattern:     `\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b`,
			Stopwords:   []string{"example"},
			MustMatch:   []string{"key AKIAZ3MSJV4WWNWDE6GK ok", "ASIAY34FZKBOKMUTVV7A"},
			MustNotMatch: []string{"AKIAIOSFODNN7EXAMPLE (the AWS docs' example)", "AKIAZ3MSJV4WWNWDE6G",
				"xAKIAZ3MSJV4WWNWDE6GK", "AKIA1234567890123456"},
		},
		{
			Name:        "aws-secret-access-key",
			Description: "AWS secret access key",
			Pattern:     `(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)`,
			SecretGroup: 1,
			Entropy:     3.5,
			Stopwords:   []string{"example"},
			MustMatch:   []string{"aws_secret_access_key = 9drTJvcXLB89EXl7Zq3Q4mGbUu2Yc0kLmA6r/P1v", `AWS_SECRET_ACCESS_KEY: "Zx8QvN2mK7pL4tR9wB3yH6jD1fG5sA0cE8uI2oP/"`},
			MustNotMatch: []string{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
				"aws_secret_access_key = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		},
		{
			Name:         "gcp-api-key",
			Description:  "Google Cloud API key",
			Pattern:      `\bAIza[0-9A-Za-z_-]{35}\b`,
			MustMatch:    []string{"AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"},
			MustNotMatch: []string{"AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsH", "AIza"},
		},
		{
			Name:         "gcp-service-account-key",
			Description:  "Google Cloud service account key file",
			Pattern:      `"private_key_id"\s*:\s*"[a-f0-9]{40}"`,
			MustMatch:    []string{`{"type": "service_account", "private_key_id": "3b1c2f0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c", ...}`},
			MustNotMatch: []string{`"private_key_id": "<your key id>"`},
		},
		{
			Name:         "azure-storage-key",
			Description:  "Azure storage account key",
			Pattern:      `(?i)AccountKey=([A-Za-z0-9+/]{86}==)`,
			SecretGroup:  1,
			MustMatch:    []string{"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"},
			MustNotMatch: []string{"AccountKey=<key>"},
		},
		{
			Name:         "github-token",
			Description:  "GitHub token",
			Pattern:      `\b(?:(?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{36}|github_pat_[0-9A-Za-z_]{82})\b`,
			MustMatch:    []string{"ghp_16C7e42F292c6912E7710c838347Ae178B4a", "token ghs_0123456789abcdefghijABCDEFGHIJ012345 expires"},
			MustNotMatch: []string{"ghp_tooshort", "ghx_16C7e42F292c6912E7710c838347Ae178B4a"},
		},
		{
			Name:         "gitlab-token",
			Description:  "GitLab personal access token",
			Pattern:      `\bglpat-[0-9A-Za-z_-]{20}\b`,
			MustMatch:    []string{"glpat-xYz12AbC34dEf56GhI78"},
			MustNotMatch: []string{"glpat-short"},
		},
		{
			Name:         "slack-token",
			Description:  "Slack bot, user or legacy token",
			Pattern:      `\bxox[abposre]-[0-9]{8,13}-[0-9A-Za-z-]{16,}`,
			MustMatch:    []string{"xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxp-1234567890-1234567890-1234567890123-0123456789abcdef0123456789abcdef"},
			MustNotMatch: []string{"xoxb-not-a-token", "xoxz-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"},
		},
		{
			Name:         "slack-app-token",
			Description:  "Slack app-level token",
			Pattern:      `\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{20,}\b`,
			MustMatch:    []string{"xapp-1-A0123ABCDEF-1234567890123-0123456789abcdef0123456789abcdef"},
			MustNotMatch: []string{"xapp-1-A0123-12-short"},
		},
		{
			Name:         "slack-webhook",
			Description:  "Slack incoming webhook URL",
			Pattern:      `https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}`,
			MustMatch:    []string{"https://hooks.slack.com/services/T0AB12CD3/B0EF45GH6/AbCdEfGhIjKlMnOpQrStUvWx"},
			MustNotMatch: []string{"https://hooks.slack.com/services/T0/B0/x"},
		},
		{
			Name:         "stripe-key",
			Description:  "Stripe secret or restricted key",
			Pattern:      `\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,99}\b`,
			MustMatch:    []string{"sk_live_51HcDz2KfJ8xQ3mN7pL4tR9wB", "rk_test_4eC39HqLyjWDarjtT1zdp7dc"},
			MustNotMatch: []string{"pk_live_51HcDz2KfJ8xQ3mN7pL4tR9wB (publishable)", "sk_live_short"},
		},
		{
			Name:         "openai-key",
			Description:  "OpenAI API key",
			Pattern:      `\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,74}T3BlbkFJ[A-Za-z0-9_-]{20,74}\b`,
			MustMatch:    []string{"sk-proj-abcdefghij0123456789T3BlbkFJabcdefghij0123456789", "sk-ABCDEFGHIJKLMNOPQRSTT3BlbkFJABCDEFGHIJKLMNOPQRST"},
			MustNotMatch: []string{"sk-abcdefghij0123456789"},
		},
		{
			Name:         "anthropic-key",
			Description:  "Anthropic API key",
			Pattern:      `\bsk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA\b`,
			MustMatch:    []string{"sk-ant-api03-" + repeat("Ab3_", 23) + "xAA"},
			MustNotMatch: []string{"sk-ant-api03-short"},
		},
		{
			Name:         "private-key",
			Description:  "Private key block",
			Pattern:      `-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----`,
			MustMatch:    []string{"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA", "-----BEGIN OPENSSH PRIVATE KEY-----", "-----BEGIN PGP PRIVATE KEY BLOCK-----", "-----BEGIN PRIVATE KEY-----"},
			MustNotMatch: []string{"-----BEGIN PUBLIC KEY-----", "-----BEGIN CERTIFICATE-----", "-----BEGIN RSA PUBLIC KEY-----"},
		},
		{
			Name:        "jwt",
			Description: "JSON Web Token",
			Pattern:     `\beyJ[A-Za-z0-9_-]{10,}={0,2}\.eyJ[A-Za-z0-9_-]{10,}={0,2}\.[A-Za-z0-9_-]{10,}`,
			Validator:   "jwt",
			MustMatch:   []string{"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"},
			MustNotMatch: []string{"eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop (no alg in the header)",
				"eyJhbGciOiJIUzI1NiJ9.notpayload.abc"},
		},
		{
			Name:        "password-assignment",
			Description: "Password written out",
			Pattern:     `(?i)\b(?:password|passwd|pwd|passphrase)\b["']?\s*(?:[:=]|:=|=>|\bis\b)\s*["']?([^\s"']{8,64})`,
			SecretGroup: 1,
			Allow:       placeholders,
			Stopwords: []string{"required", "incorrect", "invalid", "expired", "wrong", "missing", "changed", "protected",
				"manager", "policy", "strength", "hidden", "redacted", "placeholder", "example"},
			MustMatch: []string{"db password = hunter2hunter2", `"password": "Tr0ub4dor&3x!"`, "the wifi password is correcthorsebattery", "PASSWORD: s3cr3t-P@ss"},
			MustNotMatch: []string{"password: ********", "password = ${DB_PASSWORD}", "your password is required", "password is incorrect!",
				"password: <your password>", "password = {{ vault_pw }}", "forgot password? reset it"},
		},
		{
			Name:         "payment-card",
			Description:  "Payment card number (Luhn-checked)",
			Pattern:      `\b(?:[2-6][0-9]{11,18}|[2-6][0-9]{3}(?:[ -][0-9]{4}){3}|3[47][0-9]{2}[ -][0-9]{6}[ -][0-9]{5})\b`,
			Validator:    "luhn",
			MustMatch:    []string{"4111 1111 1111 1111", "card 4111111111111111 exp 12/29", "5555-5555-5555-4444", "amex 3782 822463 10005", "6011111111111117", "6759649826438453"},
			MustNotMatch: []string{"4111 1111 1111 1112", "4111111111111112", "order 1234567890123", "call 555 0100 ext 2", "2026-11-25 12:00:00"},
		},
		{
			Name:         "iban",
			Description:  "IBAN (mod-97-checked)",
			Pattern:      `\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b`,
			Validator:    "iban",
			MustMatch:    []string{"GB82 WEST 1234 5698 7654 32", "pay to DE89370400440532013000 today", "FR14 2004 1010 0505 0001 3M02 606"},
			MustNotMatch: []string{"GB82 WEST 1234 5698 7654 33", "DE89370400440532013001", "XX12 3456 7890 1234"},
		},
		{
			Name:         "us-ssn",
			Description:  "US Social Security number",
			Pattern:      `\b[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}\b`,
			Validator:    "us-ssn",
			MustMatch:    []string{"ssn 536-22-1234", "SSN: 123 45 6789"},
			MustNotMatch: []string{"000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000", "078-05-1120 (Woolworth's wallet card)", "phone 555-12-34567"},
		},
	}
}

// LookupBuiltin returns the builtin with that name.
func LookupBuiltin(name string) (Builtin, bool) {
	bs := Builtins()
	i := slices.IndexFunc(bs, func(b Builtin) bool { return b.Name == name })
	if i < 0 {
		return Builtin{}, false
	}
	return bs[i], true
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}
