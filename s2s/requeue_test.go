package s2s

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
)

// seqStanza makes a stanza from → to with the given id, numbered seq.
func seqStanza(t *testing.T, from, to, id string, seq uint64, resent bool) Stanza {
	t.Helper()
	s, err := ParseStanza([]byte(fmt.Sprintf("<message from='u@%s' to='v@%s' id='%s'/>", from, to, id)))
	if err != nil {
		t.Fatal(err)
	}
	s.seq, s.resent = seq, resent
	return s
}

func seqsOf(q []Stanza) []uint64 {
	var out []uint64
	for _, s := range q {
		out = append(out, s.seq)
	}
	return out
}

func TestMergeSeq(t *testing.T) {
	for i, tc := range []struct {
		head, q, want []uint64
	}{
		{head: nil, q: []uint64{3, 4}, want: []uint64{3, 4}},
		{head: []uint64{1, 2}, q: nil, want: []uint64{1, 2}},
		{head: []uint64{1, 2}, q: []uint64{3, 4}, want: []uint64{1, 2, 3, 4}},
		// A batch that went back to the queue before the stream's
		// unacknowledged stanzas did: they still go first.
		{head: []uint64{1, 2}, q: []uint64{5, 6, 7}, want: []uint64{1, 2, 5, 6, 7}},
		{head: []uint64{1, 4}, q: []uint64{2, 3, 5}, want: []uint64{1, 2, 3, 4, 5}},
		{head: []uint64{6, 7}, q: []uint64{2, 3}, want: []uint64{2, 3, 6, 7}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			mk := func(seqs []uint64) []Stanza {
				var q []Stanza
				for _, n := range seqs {
					q = append(q, Stanza{seq: n})
				}
				return q
			}
			head, q := mk(tc.head), mk(tc.q)
			got := seqsOf(mergeSeq(head, q))
			if !slices.Equal(got, tc.want) {
				t.Errorf("mergeSeq(%v, %v) = %v, want %v", tc.head, tc.q, got, tc.want)
			}
			// head is the caller's (a stream's buffer): never written to.
			if !slices.Equal(seqsOf(head), tc.head) {
				t.Errorf("head changed to %v", seqsOf(head))
			}
		})
	}
}

func TestPartitionPair(t *testing.T) {
	p := pair{"a.test", "b.test"}
	all := []Stanza{
		seqStanza(t, "a.test", "b.test", "1", 1, false),
		seqStanza(t, "x.test", "b.test", "2", 2, false),
		seqStanza(t, "A.TEST", "b.test", "3", 3, false), // another form of p
		seqStanza(t, "a.test", "y.test", "4", 4, false),
		seqStanza(t, "a.test", "b.test", "5", 5, false),
	}
	mine, others := partitionPair(all, p)
	if got := seqsOf(mine); !slices.Equal(got, []uint64{1, 3, 5}) {
		t.Errorf("mine = %v", got)
	}
	if got := seqsOf(others); !slices.Equal(got, []uint64{2, 4}) {
		t.Errorf("others = %v", got)
	}
	one := all[:1]
	mine, others = partitionPair(one, p)
	if len(mine) != 1 || others != nil || &mine[0] != &one[0] {
		t.Errorf("a stream of one pair: mine %v, others %v (copied: %v)", seqsOf(mine), seqsOf(others), len(mine) == 1 && &mine[0] != &one[0])
	}
}

// TestHandBack: the stanzas of two pairs that one shared stream held
// unacknowledged, interleaved as it wrote them, go back each to its own
// pair's link, in order and before what the pair queued after them; each
// is written once more (counted in StanzasResent, marked Event.Resent),
// and the ones that were resent once already are bounced.
func TestHandBack(t *testing.T) {
	la, lb := listen(t), listen(t)
	resentOut := make(chan string, 16)
	a := newNode(t, la, []string{"x.test", "y.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withConfig(func(c *Config) {
			c.Observer = func(e Event) {
				if e.Kind == StanzaOut && e.Resent {
					resentOut <- e.Stanza.ID
				}
			}
		}))
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"x.test": addrOf(la), "y.test": addrOf(la)})

	held := []Stanza{
		seqStanza(t, "x.test", "b.test", "x0", 1, false),
		seqStanza(t, "y.test", "b.test", "y0", 2, false),
		seqStanza(t, "x.test", "b.test", "x1", 3, false),
		seqStanza(t, "y.test", "b.test", "y1", 4, true), // lost twice
		seqStanza(t, "x.test", "b.test", "x2", 5, true), // lost twice
		seqStanza(t, "y.test", "b.test", "y2", 6, false),
		seqStanza(t, "x.test", "b.test", "x3", 7, false),
	}
	a.m.seq.Store(100) // Send numbers after what the stream held
	why := errors.New("the shared stream died")
	a.m.handBack(held, why)
	a.send("<message from='u@x.test' to='v@b.test' id='x-later'/>")
	a.send("<message from='u@y.test' to='v@b.test' id='y-later'/>")

	got := map[string][]string{}
	for range 7 {
		s := b.nextDelivered()
		got[domainpart(s.From)] = append(got[domainpart(s.From)], s.ID)
	}
	if want := []string{"x0", "x1", "x3", "x-later"}; !slices.Equal(got["x.test"], want) {
		t.Errorf("x.test's stanzas arrived as %v, want %v", got["x.test"], want)
	}
	if want := []string{"y0", "y2", "y-later"}; !slices.Equal(got["y.test"], want) {
		t.Errorf("y.test's stanzas arrived as %v, want %v", got["y.test"], want)
	}
	bounced := map[string]Bounce{}
	for range 2 {
		bo := a.nextBounce()
		bounced[bo.Stanza.ID] = bo
	}
	for id, p := range map[string]string{"x2": "x.test", "y1": "y.test"} {
		bo, ok := bounced[id]
		if !ok {
			t.Errorf("%s not bounced: %v", id, bounced)
			continue
		}
		if bo.Condition != stanza.RemoteServerTimeout || !strings.Contains(bo.Text, "link "+p+" to b.test lost twice") || !errors.Is(bo.Err, why) {
			t.Errorf("%s bounced with %s %q (%v)", id, bo.Condition, bo.Text, bo.Err)
		}
	}
	var resent []string
	for range 5 {
		resent = append(resent, <-resentOut)
	}
	slices.Sort(resent)
	if want := []string{"x0", "x1", "x3", "y0", "y2"}; !slices.Equal(resent, want) {
		t.Errorf("marked resent: %v, want %v", resent, want)
	}
	for _, l := range outgoing(a.m.Links()) {
		want := map[string]uint64{"x.test": 3, "y.test": 2}[l.Local]
		if l.StanzasResent != want {
			t.Errorf("link %s → %s: StanzasResent %d, want %d", l.Local, l.Remote, l.StanzasResent, want)
		}
	}
}

// TestHandBackStopping: stanzas handed back once the Manager is shutting
// down are bounced, not lost and not sent.
func TestHandBackStopping(t *testing.T) {
	a := newNode(t, listen(t), []string{"x.test"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.m.Shutdown(ctx)
	a.m.handBack([]Stanza{seqStanza(t, "x.test", "b.test", "late", 1, false)}, errors.New("gone"))
	if bo := a.nextBounce(); bo.Stanza.ID != "late" || bo.Condition != stanza.ServiceUnavailable {
		t.Errorf("bounced %s with %s", bo.Stanza.ID, bo.Condition)
	}
}

// TestHandBackDenied: stanzas handed back for a pair the policy now
// denies are bounced with policy-violation (ErrDenied), and no link is
// made again for the pair: the policy's promise holds for what a dead
// stream gives back too.
func TestHandBackDenied(t *testing.T) {
	la, lb := listen(t), listen(t)
	a := newNode(t, la, []string{"x.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)})
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"x.test": addrOf(la)})
	a.reload(func(s *config.S2S) { s.HostPolicy = []config.HostPolicy{{Host: "b.test", Policy: "deny"}} })
	a.m.handBack([]Stanza{seqStanza(t, "x.test", "b.test", "x0", 1, false)}, errors.New("the shared stream died"))
	select {
	case s := <-b.delivered:
		t.Fatalf("%s delivered to a denied domain", s.ID)
	case bo := <-a.bounced:
		if bo.Stanza.ID != "x0" || bo.Condition != stanza.PolicyViolation || !errors.Is(bo.Err, ErrDenied) {
			t.Errorf("bounced %s with %s %q (%v)", bo.Stanza.ID, bo.Condition, bo.Text, bo.Err)
		}
	case <-time.After(wait):
		t.Fatal("x0 neither bounced nor delivered")
	}
	a.m.mu.Lock()
	n := len(a.m.out)
	a.m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d outgoing links made for a denied pair", n)
	}
}
