package detect

import (
	"errors"
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
