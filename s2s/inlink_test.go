package s2s

import (
	"testing"

	"github.com/xmpp-s2s/federation/dialback"
)

// TestLookupRemembers: the reader's lookup keeps the last pair it found,
// and still finds each pair's own link when stanzas for several pairs
// alternate, a pair written in another form, and none for a pair not
// registered.
func TestLookupRemembers(t *testing.T) {
	one, two := &inLink{}, &inLink{}
	s := &inStream{links: map[dialback.Pair]*inLink{
		{From: "b.test", To: "a.test"}:  one,
		{From: "b2.test", To: "a.test"}: two,
	}}
	for i, tc := range []struct {
		from, to string
		want     *inLink
		wantP    dialback.Pair
	}{
		{"b.test", "a.test", one, dialback.Pair{From: "b.test", To: "a.test"}},
		{"b.test", "a.test", one, dialback.Pair{From: "b.test", To: "a.test"}},
		{"b2.test", "a.test", two, dialback.Pair{From: "b2.test", To: "a.test"}},
		{"b.test", "a.test", one, dialback.Pair{From: "b.test", To: "a.test"}},
		{"B.TEST", "a.test", one, dialback.Pair{From: "b.test", To: "a.test"}},
		{"c.test", "a.test", nil, dialback.Pair{From: "c.test", To: "a.test"}},
		{"b2.test", "a.test", two, dialback.Pair{From: "b2.test", To: "a.test"}},
	} {
		p, lk := s.lookup(tc.from, tc.to)
		if lk != tc.want || p != tc.wantP {
			t.Errorf("%d: lookup(%s, %s) = %v, %p; want %v, %p", i, tc.from, tc.to, p, lk, tc.wantP, tc.want)
		}
	}
}
