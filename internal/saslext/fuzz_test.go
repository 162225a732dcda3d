package saslext

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"
)

// FuzzParse feeds every parser arbitrary input: none may panic, every error
// must wrap ErrMalformed unless the input is not XML at all, and what Auth and
// Failure write must parse back to what they were given.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		string(Feature(Name)), `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`,
		string(Auth(Name, nil, true)), string(Auth(Name, []byte("a.test"), true)),
		string(Challenge(nil)), string(Response([]byte("x"))), Success, Abort,
		string(Failure(NotAuthorized, "no")), `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><text>t</text></failure>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parse := func(fn func(xml.TokenReader, xml.StartElement) error) {
			d := xml.NewDecoder(strings.NewReader(s))
			for {
				tok, err := d.Token()
				if err != nil {
					return
				}
				if start, ok := tok.(xml.StartElement); ok {
					if err := fn(d, start); err != nil && !errors.Is(err, ErrMalformed) {
						t.Fatalf("error does not wrap ErrMalformed: %v", err)
					}
					return
				}
			}
		}
		parse(func(r xml.TokenReader, st xml.StartElement) error { _, err := ParseMechanisms(r, st); return err })
		parse(func(r xml.TokenReader, st xml.StartElement) error {
			mech, resp, initial, err := ParseAuth(r, st)
			if err != nil {
				return err
			}
			// Round trip: what we parsed, written again, parses the same.
			r2, st2 := decoder(t, string(Auth(mech, resp, initial)))
			m2, resp2, in2, err := ParseAuth(r2, st2)
			if err != nil || m2 != mech || string(resp2) != string(resp) || in2 != initial {
				t.Fatalf("round trip of %q: %q %q %v %v", s, m2, resp2, in2, err)
			}
			return nil
		})
		parse(func(r xml.TokenReader, st xml.StartElement) error { _, err := ParseData(r, st); return err })
		parse(func(r xml.TokenReader, st xml.StartElement) error {
			cond, text, err := ParseFailure(r, st)
			if err != nil || cond == "" || strings.ContainsAny(cond, "<>/ '\"&") {
				return err
			}
			r2, st2 := decoder(t, string(Failure(cond, text)))
			c2, t2, err := ParseFailure(r2, st2)
			if err != nil || c2 != cond || t2 != strings.ToValidUTF8(text, "\uFFFD") && t2 != text {
				t.Fatalf("round trip of %q: %q %q %v", s, c2, t2, err)
			}
			return nil
		})
	})
}
