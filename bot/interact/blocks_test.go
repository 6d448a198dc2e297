package interact

import "testing"

// TestButtonsCarryTheirReferences: what the notice and alert builders put on
// their buttons reads back as the message, leak and rule it names.
func TestButtonsCarryTheirReferences(t *testing.T) {
	author := ButtonValues(string(AuthorBlocks("notice", "C1", "1.000100")))
	if author[ActionNotSecret] != "C1 1.000100" || author[ActionRotated] != "C1 1.000100" {
		t.Fatalf("author buttons = %v", author)
	}
	alert := ButtonValues(string(AlertBlocks("alert", "C1", "1.000100", []Finding{{RegexID: 7, Excerpt: "tok_***"}}, true)))
	ch, ts, id, err := parseRef(alert[ActionAllow])
	if err != nil || ch != "C1" || ts != "1.000100" || id != 7 || alert[ActionPause] != "7" || alert[ActionKeep] != alert[ActionAllow] {
		t.Fatalf("alert buttons = %v (%s %s %d %v)", alert, ch, ts, id, err)
	}
	if got := ButtonValues(string(AlertBlocks("alert", "C1", "1.1", nil, true))); len(got) != 0 {
		t.Errorf("an alert without findings has buttons %v", got)
	}
	for _, bad := range []string{"", "C1", "C1 1.1 x", "C1 1.1 -3", "a b c d"} {
		if _, _, _, err := parseRef(bad); err == nil {
			t.Errorf("parseRef(%q) accepted", bad)
		}
	}
}
