package detect

import (
	"errors"
	"strings"
	"testing"
)

// TestBreadth: the builtins flag none of the ordinary-chat sample;
// patterns that match nearly any text flag most of it and are refused.
func TestBreadth(t *testing.T) {
	if n := len(OrdinaryChat()); n < 400 {
		t.Fatalf("the ordinary-chat sample has %d lines", n)
	}
	for _, b := range Builtins() {
		if share, err := Breadth(b.Rule(1)); err != nil || share != 0 {
			t.Errorf("builtin %s flags %.1f%% of ordinary chat (%v)", b.Name, 100*share, err)
		}
	}
	for _, p := range []string{"e", ".", ".+", "[a-z]", " ", `\d+`, `[0-9]{5}`} {
		var be *BreadthError
		if err := CheckBreadth(Rule{Pattern: p}); !errors.As(err, &be) || be.Share <= MaxBreadth {
			t.Errorf("%q: %v, want a BreadthError", p, err)
		}
	}
}

// TestMaskJointly: values that are parts of one text are hidden, others
// keep their masks; the end-overlap check agrees with the plain one.
func TestMaskJointly(t *testing.T) {
	tests := []struct {
		secrets []string
		hide    []bool
	}{
		{[]string{"6759649826438453", "675964982643"}, []bool{true, true}},          // one inside the other
		{[]string{"6759649826438453", "98264384531234"}, []bool{true, true}},        // an end of one starts the other
		{[]string{"6759649826438453", "6759649826438461"}, []bool{false, false}},    // two cards of one bank
		{[]string{"6759 6498 2643 8453", "6759649826438453"}, []bool{false, false}}, // the same value
		{[]string{"AKIAIOSFODNN7EXAMPL2"}, []bool{false}},
	}
	for _, tt := range tests {
		got := MaskJointly(tt.secrets)
		for i := range got {
			if got[i] != tt.hide[i] {
				t.Errorf("MaskJointly(%q) = %v, want %v", tt.secrets, got, tt.hide)
				break
			}
		}
	}
	naive := func(a, b string) bool {
		for k := min(len(a), len(b)); k >= minJointOverlap; k-- {
			if strings.HasSuffix(a, b[:k]) {
				return true
			}
		}
		return false
	}
	for _, p := range [][2]string{{"abcdef", "defghi"}, {"abcabcab", "abcabd"}, {"aaaa", "aaaab"}, {"xyz", "abc"}, {"abababab", "ababc"}, {"0123", "123456"}} {
		if got, want := endsOverlap(p[0], p[1]), naive(p[0], p[1]); got != want {
			t.Errorf("endsOverlap(%q, %q) = %v, want %v", p[0], p[1], got, want)
		}
	}
}

// FuzzEndsOverlap checks the linear end-overlap test against the plain
// quadratic one.
func FuzzEndsOverlap(f *testing.F) {
	f.Add("6759649826438453", "98264384531234")
	f.Add("abababab", "ababc")
	f.Add("aaaa", "aaaab")
	f.Fuzz(func(t *testing.T, a, b string) {
		want := false
		for k := min(len(a), len(b)); k >= minJointOverlap; k-- {
			if strings.HasSuffix(a, b[:k]) {
				want = true
				break
			}
		}
		if got := endsOverlap(a, b); got != want {
			t.Errorf("endsOverlap(%q, %q) = %v, want %v", a, b, got, want)
		}
	})
}
