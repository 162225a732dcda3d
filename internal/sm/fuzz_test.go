package sm

import (
	"errors"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes: it must not panic, every error
// must wrap ErrMalformed, the fast path must agree with encoding/xml's
// (Decode's) reading of every element it accepts, and what Append writes
// for a parsed element must parse back to it.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<r xmlns='urn:xmpp:sm:3'/>`, `<a xmlns='urn:xmpp:sm:3' h='42'/>`, `<a h="1" xmlns="urn:xmpp:sm:3" />`,
		`<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/>`, `<enabled xmlns='urn:xmpp:sm:3' id='i' location='l' max='1'/>`,
		`<failed xmlns='urn:xmpp:sm:3' h='9'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`,
		`<sm:a xmlns:sm='urn:xmpp:sm:3' h='1'/>`, `<a xmlns='urn:xmpp:sm:3' h='&#49;'/>`, `<a xmlns='urn:xmpp:sm:3' h='4294967296'/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		el, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
		}
		if fast, ok := parseFast(raw); ok {
			slow, err := parseSlow(raw)
			if err != nil || slow != fast {
				t.Fatalf("%q: fast path %+v, encoding/xml %+v, %v", raw, fast, slow, err)
			}
		}
		if err != nil {
			return
		}
		back, err := Parse(el.Append(nil))
		if err != nil || back != el {
			t.Fatalf("%q: parsed %+v, written %s, parsed back %+v, %v", raw, el, el.Append(nil), back, err)
		}
	})
}
