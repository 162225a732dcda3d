package s2s

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/config"
)

// TestNotStanzaText: what ParseStanza and Send say about bytes that are not
// a stanza has one prefix, says "not a stanza" once, and still wraps
// ErrNotStanza and, where the bytes would earn one on a stream, the stream
// error condition.
func TestNotStanzaText(t *testing.T) {
	m, err := New(Config{S2S: config.Default(), IsLocal: func(string) bool { return false },
		Deliver: func(Stanza) {}, Bounce: func(Bounce) {}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i, tc := range []struct {
		in, err string
		cond    string // stream condition wrapped, "" for none
	}{
		0: {in: "<x/>", err: "s2s: not a stanza: <x/> is not message, presence or iq"},
		1: {in: "not xml", err: "s2s: not a stanza: does not start with an element"},
		2: {in: "<message from='a.test' to='b.test'>", err: "s2s: not a stanza: unclosed element: not-well-formed", cond: "not-well-formed"},
		3: {in: "<message from='a.test' to='b.test'/><x/>", err: "s2s: not a stanza: more than one element"},
		4: {in: "<message xmlns='foo' from='a.test' to='b.test'/>", err: `s2s: not a stanza: stanza namespace "foo"`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			_, perr := ParseStanza([]byte(tc.in))
			serr := m.Send(context.Background(), []byte(tc.in))
			for _, err := range []error{perr, serr} {
				if err == nil || err.Error() != tc.err || !errors.Is(err, ErrNotStanza) {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				var se stream.Error
				if tc.cond != "" && (!errors.As(err, &se) || se.Err != tc.cond) {
					t.Errorf("%v: stream condition %q, want %s", err, se.Err, tc.cond)
				}
			}
		})
	}
}

// TestDomainsOf: the readers' remembered domains are domainpart's for
// every from and to, whether the strings repeat (the same string or equal
// bytes), change, or are empty.
func TestDomainsOf(t *testing.T) {
	var d domainsOf
	jids := []string{"b.test", "a.test", "u@b.test/r", "u@b.test/r", "b.test", "", "v@a.test", "B.TEST", "x@y@z/w/v", ""}
	for i := range jids {
		for j := range jids {
			from, to := jids[i], jids[(i+j)%len(jids)]
			if j%2 == 1 {
				// Equal bytes in another string, as a parse of
				// another stanza hands them.
				from = string([]byte(from))
			}
			gf, gt := d.of(from, to)
			if gf != domainpart(from) || gt != domainpart(to) {
				t.Fatalf("of(%q, %q) = %q, %q; want %q, %q", from, to, gf, gt, domainpart(from), domainpart(to))
			}
		}
	}
}
