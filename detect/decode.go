package detect

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Decoding limits: how deep encodings are unwrapped (base64 of hex of …)
// and how many decoded bytes one message may produce in all. gitleaks'
// default depth is 5.
const (
	MaxDecodeDepth = 5
	MaxDecodedSize = 256 << 10
)

// Candidate encoded segments, as gitleaks finds them: long runs of the
// base64 alphabets (standard and URL-safe, 16 characters or more), of hex
// digits (32 or more), and runs with percent escapes. The first two are
// found by one pass over the bytes; messages without a '%' skip the third.
const (
	minBase64 = 16
	minHex    = 32
)

var percentRun = regexp.MustCompile(`(?:[^\s%]*%[0-9A-Fa-f]{2})+[^\s%]*`)

func isBase64Byte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '_' || c == '-'
}

func isHexByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// ScanEncoded finds the secrets hidden in encoded segments of a normalised
// message: base64, hex and percent-encoded runs are decoded (to a depth of
// MaxDecodeDepth, at most MaxDecodedSize bytes in all) and the decoded text
// is scanned with the set. A match's Start and End point at the encoded
// segment in the message; its Excerpt is masked from the decoded secret and
// its MAC fingerprints the decoded value, so that allowlisting works on what
// the secret is, however it was encoded. Matches of the encoded text itself
// are ScanNormalized's.
func (s *Set) ScanEncoded(text string) []Match {
	if len(s.rules) == 0 {
		return nil
	}
	budget := MaxDecodedSize
	var out []Match
	s.scanEncoded(text, 0, len(text), 1, &budget, &out)
	return out
}

// scanEncoded decodes the segments of text and scans them; a match is
// reported at [outer, outerEnd) of the original message when depth > 1.
func (s *Set) scanEncoded(text string, outer, outerEnd, depth int, budget *int, out *[]Match) {
	if depth > MaxDecodeDepth || *budget <= 0 {
		return
	}
	for _, seg := range encodedSegments(text) {
		decoded, ok := decodeSegment(text[seg[0]:seg[1]], seg[2])
		if !ok || len(decoded) > *budget {
			continue
		}
		*budget -= len(decoded)
		start, end := outer+seg[0], outer+seg[1]
		if depth > 1 {
			start, end = outer, outerEnd // the outermost segment holds it
		}
		for _, m := range s.ScanNormalized(decoded) {
			secret := decoded[m.Start:m.End]
			m.Start, m.End, m.Excerpt, m.Decoded, m.decoded = start, end, Mask(secret), true, secret
			if s.macKey != nil {
				m.MAC = fingerprint(s.macKey, secret)
			}
			*out = append(*out, m)
		}
		s.scanEncoded(decoded, start, end, depth+1, budget, out)
	}
}

// Segment kinds.
const (
	segBase64 = iota
	segHex
	segPercent
)

// encodedSegments returns [start, end, kind] of each candidate segment.
func encodedSegments(text string) [][3]int {
	var segs [][3]int
	for i := 0; i < len(text); {
		if !isBase64Byte(text[i]) {
			i++
			continue
		}
		start, allHex := i, true
		for i < len(text) && isBase64Byte(text[i]) {
			allHex = allHex && isHexByte(text[i])
			i++
		}
		end := i
		for pad := 0; pad < 3 && end < len(text) && text[end] == '='; pad++ {
			end++
		}
		switch n := i - start; {
		case allHex && n >= minHex:
			segs = append(segs, [3]int{start, i, segHex})
		case n >= minBase64:
			segs = append(segs, [3]int{start, end, segBase64})
		}
		i = end
	}
	if strings.Contains(text, "%") {
		for _, loc := range percentRun.FindAllStringIndex(text, -1) {
			segs = append(segs, [3]int{loc[0], loc[1], segPercent})
		}
	}
	return segs
}

// decodeSegment decodes one segment; ok is false when it does not decode to
// readable text (binary, a hash, random bytes), which holds no secret to
// read.
func decodeSegment(seg string, kind int) (string, bool) {
	var b []byte
	var err error
	switch kind {
	case segHex:
		if len(seg)%2 != 0 {
			return "", false
		}
		b, err = hex.DecodeString(seg)
	case segBase64:
		trimmed := strings.TrimRight(seg, "=")
		enc := base64.RawStdEncoding
		if strings.ContainsAny(trimmed, "-_") {
			enc = base64.RawURLEncoding
		}
		b, err = enc.DecodeString(trimmed)
	case segPercent:
		var s string
		s, err = url.PathUnescape(seg)
		b = []byte(s)
	}
	if err != nil || len(b) == 0 || !readable(b) {
		return "", false
	}
	return string(b), true
}

// readable reports whether b is UTF-8 text without control characters
// (tabs and line breaks aside).
func readable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}
