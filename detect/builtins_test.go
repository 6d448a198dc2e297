package detect

import "testing"

func TestBuiltinSamples(t *testing.T) {
	for _, b := range Builtins() {
		t.Run(b.Name, func(t *testing.T) {
			set, errs := Compile([]Rule{b.Rule(1)})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if len(b.MustMatch) == 0 || len(b.MustNotMatch) == 0 {
				t.Error("a builtin needs must-match and must-not-match samples")
			}
			for _, s := range b.MustMatch {
				if len(set.Scan(s)) == 0 {
					t.Errorf("does not match %q", s)
				}
			}
			for _, s := range b.MustNotMatch {
				if ms := set.Scan(s); len(ms) > 0 {
					t.Errorf("matches %q: %v", s, ms)
				}
			}
		})
	}
}

func TestBuiltinNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range Builtins() {
		if seen[b.Name] {
			t.Errorf("duplicate builtin %s", b.Name)
		}
		seen[b.Name] = true
		if _, ok := LookupBuiltin(b.Name); !ok {
			t.Errorf("LookupBuiltin(%s) failed", b.Name)
		}
	}
	if _, ok := LookupBuiltin("nope"); ok {
		t.Error("LookupBuiltin(nope) succeeded")
	}
}

func TestValidators(t *testing.T) {
	tests := []struct {
		name string
		v    Validator
		in   string
		want bool
	}{
		{"luhn ok", validLuhn, "4111 1111 1111 1111", true},
		{"luhn bad digit", validLuhn, "4111 1111 1111 1112", false},
		{"luhn too short", validLuhn, "42", false},
		{"luhn letters", validLuhn, "4111a111111111111", false},
		{"iban GB", validIBAN, "GB82 WEST 1234 5698 7654 32", true},
		{"iban bad check", validIBAN, "GB82 WEST 1234 5698 7654 33", false},
		{"iban wrong length for DE", validIBAN, "DE8937040044053201300", false},
		{"iban unknown country", validIBAN, "QQ82WEST12345698765432", false},
		{"ssn ok", validSSN, "536-22-1234", true},
		{"ssn area 666", validSSN, "666-22-1234", false},
		{"ssn advert", validSSN, "078-05-1120", false},
		{"jwt ok", validJWT, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", true},
		{"jwt no alg", validJWT, "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.sig", false},
		{"jwt not base64", validJWT, "eyJ!!!.eyJ.sig", false},
	}
	for _, tt := range tests {
		if got := tt.v(tt.in); got != tt.want {
			t.Errorf("%s: %q = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
	if e := entropy("aaaa"); e != 0 {
		t.Errorf("entropy(aaaa) = %v", e)
	}
	if e := entropy("abcd"); e != 2 {
		t.Errorf("entropy(abcd) = %v", e)
	}
}

func TestRuleChecks(t *testing.T) {
	rules := []Rule{
		{ID: 1, Pattern: `token=([a-z0-9]+)`, SecretGroup: 1, Keywords: []string{"TOKEN"}},
		{ID: 2, Pattern: `key:(\w+)`, SecretGroup: 1, AllowPatterns: []string{`^test`}, Stopwords: []string{"dummy"}},
		{ID: 3, Pattern: `s:(\w{8,})`, SecretGroup: 1, Entropy: 2.5},
	}
	set, errs := Compile(rules)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tests := []struct {
		text string
		want []string // excerpts
	}{
		{"token=abc123def456", []string{Mask("abc123def456")}},
		{"key:testvalue12 key:realvalue12 key:mydummyvalue", []string{Mask("realvalue12")}},
		{"s:aaaaaaaaaa s:a8F3kL9zQ2", []string{Mask("a8F3kL9zQ2")}},
	}
	for _, tt := range tests {
		var got []string
		for _, m := range set.Scan(tt.text) {
			got = append(got, m.Excerpt)
		}
		if len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
			t.Errorf("Scan(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
	// The secret group sets the offsets.
	ms := set.Scan("xx token=abc123def456")
	if len(ms) != 1 || ms[0].Start != 9 || ms[0].End != 21 {
		t.Errorf("secret group offsets = %+v", ms)
	}
	bad := []Rule{
		{ID: 4, Pattern: `a(b)c`, SecretGroup: 2},
		{ID: 5, Pattern: `abc+`, Validator: "crc32"},
		{ID: 6, Pattern: `abc+`, AllowPatterns: []string{"("}},
		{ID: 7, Pattern: `abc+`, Entropy: 9},
	}
	if _, errs := Compile(bad); len(errs) != 4 {
		t.Errorf("got %d errors for 4 bad rules: %v", len(errs), errs)
	}
}
