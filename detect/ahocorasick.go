package detect

// A small Aho-Corasick automaton compiled to a full DFA over byte classes.
// It reports which of its strings occur in a text, ASCII case-insensitively.
// About 100 lines of our own: the text is scanned once, one table load per
// byte, with no allocation, which is all the prefilter needs.

type acMatcher struct {
	class  [256]uint16 // byte → column; ASCII upper case shares lower's
	ncol   int
	delta  []int32   // state*ncol + column → next state
	out    [][]int32 // per state: ids of the strings that end here (through suffix links)
	hasOut []bool
}

// newACMatcher builds an automaton for pats (lowercased already); ids[i] is
// reported when pats[i] occurs.
func newACMatcher(pats []string, ids []int32) *acMatcher {
	m := &acMatcher{}
	// Columns: one per byte used in the patterns, plus column 0 for the rest.
	for _, p := range pats {
		for i := 0; i < len(p); i++ {
			if m.class[p[i]] == 0 {
				m.ncol++
				m.class[p[i]] = uint16(m.ncol)
			}
		}
	}
	m.ncol++
	for b := 'A'; b <= 'Z'; b++ {
		m.class[b] = m.class[b+('a'-'A')]
	}
	// The trie.
	type node struct{ next map[uint16]int32 }
	nodes := []node{{next: map[uint16]int32{}}}
	outs := [][]int32{nil}
	for i, p := range pats {
		s := int32(0)
		for j := 0; j < len(p); j++ {
			c := m.class[p[j]]
			nx, ok := nodes[s].next[c]
			if !ok {
				nx = int32(len(nodes))
				nodes = append(nodes, node{next: map[uint16]int32{}})
				outs = append(outs, nil)
				nodes[s].next[c] = nx
			}
			s = nx
		}
		outs[s] = append(outs[s], ids[i])
	}
	// Breadth first: suffix links, inherited outputs, and the full table.
	n := len(nodes)
	m.delta = make([]int32, n*m.ncol)
	fail := make([]int32, n)
	queue := make([]int32, 0, n)
	for c := range m.ncol {
		if nx, ok := nodes[0].next[uint16(c)]; ok {
			m.delta[c] = nx
			queue = append(queue, nx)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		outs[s] = append(outs[s], outs[fail[s]]...)
		for c := range m.ncol {
			if nx, ok := nodes[s].next[uint16(c)]; ok {
				fail[nx] = m.delta[int(fail[s])*m.ncol+c]
				m.delta[int(s)*m.ncol+c] = nx
				queue = append(queue, nx)
			} else {
				m.delta[int(s)*m.ncol+c] = m.delta[int(fail[s])*m.ncol+c]
			}
		}
	}
	m.out = outs
	m.hasOut = make([]bool, n)
	for s, o := range outs {
		m.hasOut[s] = len(o) > 0
	}
	return m
}

// scan calls hit for every id whose string occurs in text (an id may be
// reported more than once).
func (m *acMatcher) scan(text string, hit func(id int32)) {
	s := int32(0)
	ncol := m.ncol
	for i := 0; i < len(text); i++ {
		s = m.delta[int(s)*ncol+int(m.class[text[i]])]
		if m.hasOut[s] {
			for _, id := range m.out[s] {
				hit(id)
			}
		}
	}
}
