package detect

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"math/big"
	"strings"
)

// A Validator checks a matched secret beyond what a regexp can say (a card
// number's check digit, an IBAN's checksum). Matches it rejects are dropped.
type Validator func(secret string) bool

// Validators are the validators a rule may name.
var validators = map[string]Validator{
	"luhn":   validLuhn,
	"iban":   validIBAN,
	"us-ssn": validSSN,
	"jwt":    validJWT,
}

// ValidatorNames lists the validators a rule may name, for help texts.
func ValidatorNames() []string { return []string{"iban", "jwt", "luhn", "us-ssn"} }

// digits returns the ASCII digits of s, dropping spaces and dashes; ok is
// false if s holds anything else.
func digits(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == ' ' || c == '-' || c == '.':
		default:
			return "", false
		}
	}
	return b.String(), true
}

// validLuhn accepts 12 to 19 digits (separated by spaces or dashes or not)
// whose Luhn check digit is right: 4111 1111 1111 1111 passes, …1112 does not.
func validLuhn(s string) bool {
	d, ok := digits(s)
	if !ok || len(d) < 12 || len(d) > 19 {
		return false
	}
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// ibanLengths are the IBAN lengths of the countries that use it (SWIFT's
// registry); an unknown country is rejected.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
	"MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
	"QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25,
	"SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// validIBAN checks the country's length and the ISO 13616 mod-97 checksum.
func validIBAN(s string) bool {
	s = strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(s))
	if len(s) < 15 || len(s) > 34 || ibanLengths[s[:min(2, len(s))]] != len(s) {
		return false
	}
	var num strings.Builder
	for _, c := range s[4:] + s[:4] {
		switch {
		case c >= '0' && c <= '9':
			num.WriteRune(c)
		case c >= 'A' && c <= 'Z':
			num.WriteString(big.NewInt(int64(c - 'A' + 10)).String())
		default:
			return false
		}
	}
	n, ok := new(big.Int).SetString(num.String(), 10)
	return ok && new(big.Int).Mod(n, big.NewInt(97)).Int64() == 1
}

// validSSN applies the Social Security Administration's rules: area not
// 000, 666 or 900–999, group not 00, serial not 0000, and not one of the
// numbers published in advertising (078-05-1120, 219-09-9999).
func validSSN(s string) bool {
	d, ok := digits(s)
	if !ok || len(d) != 9 {
		return false
	}
	area, group, serial := d[:3], d[3:5], d[5:]
	switch {
	case area == "000" || area == "666" || area[0] == '9':
		return false
	case group == "00" || serial == "0000":
		return false
	case d == "078051120" || d == "219099999":
		return false
	}
	return true
}

// validJWT accepts a token whose first segment is base64url JSON with an
// "alg" field, as every JWT header has.
func validJWT(s string) bool {
	head, _, ok := strings.Cut(s, ".")
	if !ok {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(head, "="))
	if err != nil {
		return false
	}
	var h map[string]any
	if json.Unmarshal(raw, &h) != nil {
		return false
	}
	_, ok = h["alg"]
	return ok
}

// entropy is the Shannon entropy of s in bits per byte.
func entropy(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	h := 0.0
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
