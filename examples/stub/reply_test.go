package main

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"github.com/xmpp-s2s/federation/s2s"
)

func parse(t testing.TB, raw string) s2s.Stanza {
	t.Helper()
	s, err := s2s.ParseStanza([]byte(raw))
	if err != nil {
		t.Fatalf("ParseStanza(%s): %v", raw, err)
	}
	return s
}

func TestAnswer(t *testing.T) {
	for i, tc := range []struct {
		in   string
		echo bool
		want string // "" for no answer
	}{
		0: {in: `<iq from='h.test' to='s.test' id='p' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`,
			want: `<iq xmlns='jabber:server' from='s.test' to='h.test' id='p' type='result'/>`},
		// Prefixed ping, addressed to a user of the domain, id escaped back.
		1: {in: `<iq from='a@h.test/r' to='u@s.test' id='a&amp;b' type='get'><x:ping xmlns:x='urn:xmpp:ping'></x:ping></iq>`,
			want: `<iq xmlns='jabber:server' from='u@s.test' to='a@h.test/r' id='a&amp;b' type='result'/>`},
		// A ping must be a get.
		2: {in: `<iq from='h.test' to='s.test' id='p' type='set'><ping xmlns='urn:xmpp:ping'/></iq>`,
			want: `<iq xmlns='jabber:server' from='s.test' to='h.test' id='p' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the federation stub answers XEP-0199 pings only</text></error></iq>`},
		// Right name, wrong namespace.
		3: {in: `<iq from='h.test' to='s.test' id='q' type='get'><ping xmlns='urn:xmpp:pong'/></iq>`,
			want: `<iq xmlns='jabber:server' from='s.test' to='h.test' id='q' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the federation stub answers XEP-0199 pings only</text></error></iq>`},
		// An empty request still needs an answer.
		4: {in: `<iq from='h.test' to='s.test' id='e' type='get'/>`,
			want: `<iq xmlns='jabber:server' from='s.test' to='h.test' id='e' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the federation stub answers XEP-0199 pings only</text></error></iq>`},
		// Responses are never answered.
		5: {in: `<iq from='h.test' to='s.test' id='r' type='result'/>`},
		6: {in: `<iq from='h.test' to='s.test' id='r' type='error'><error type='cancel'/></iq>`},
		// Messages only with echo, never errors.
		7: {in: `<message from='a@h.test' to='b@s.test' id='m'><body>hi</body></message>`},
		8: {in: `<message from='a@h.test' to='b@s.test' id='m' type='chat'><body>hi</body></message>`, echo: true,
			want: `<message to='a@h.test' from='b@s.test' id='m' type='chat'><body>hi</body></message>`},
		9:  {in: `<message from='a@h.test' to='b@s.test' type='error'><error type='cancel'/></message>`, echo: true},
		10: {in: `<presence from='a@h.test' to='b@s.test'/>`, echo: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := answer(parse(t, tc.in), tc.echo)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("answer\n got %s\nwant %s", got, tc.want)
			}
			if got != nil {
				parse(t, string(got)) // the Manager must accept what we send
			}
		})
	}
}

func TestSwapAddresses(t *testing.T) {
	for i, tc := range []struct{ in, want string }{
		0: {`<message from='a' to='b'/>`, `<message to='a' from='b'/>`},
		1: {`<message xmlns="jabber:server" to="b" from="a" xml:lang="en"><body>x</body></message>`,
			`<message xmlns='jabber:server' from='b' to='a' xml:lang='en'><body>x</body></message>`},
		// Payload bytes are kept exactly, namespaces and entities included.
		2: {`<message from='a' to='b'><x:y xmlns:x='urn:x'>&lt;&amp;</x:y><!-- c --></message>`,
			`<message to='a' from='b'><x:y xmlns:x='urn:x'>&lt;&amp;</x:y><!-- c --></message>`},
		// Values are escaped again after decoding.
		3: {`<message from='a&amp;b' to="c'd"/>`, `<message to='a&amp;b' from='c&#39;d'/>`},
		// Only one address: it moves to the other attribute.
		4: {`<message to='b'></message>`, `<message from='b'></message>`},
		5: {`<jc:message xmlns:jc='jabber:server' from='a' to='b'></jc:message>`, `<jc:message xmlns:jc='jabber:server' to='a' from='b'></jc:message>`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := swapAddresses([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("swap\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	for i, in := range []string{"", "   ", "text", "<!-- only a comment -->", "<message from='a"} {
		t.Run("bad"+strconv.Itoa(i), func(t *testing.T) {
			if got, err := swapAddresses([]byte(in)); err == nil {
				t.Errorf("swap(%q) = %q, want an error", in, got)
			}
		})
	}
}

func TestFirstChild(t *testing.T) {
	for i, tc := range []struct {
		in           string
		space, local string
		err          error
	}{
		0: {in: `<iq><ping xmlns='urn:xmpp:ping'/></iq>`, space: "urn:xmpp:ping", local: "ping"},
		1: {in: `<iq xmlns='jabber:server'> <query xmlns='q'><item/></query><ping xmlns='urn:xmpp:ping'/></iq>`, space: "q", local: "query"},
		2: {in: `<iq xmlns:p='urn:xmpp:ping'><p:ping/></iq>`, space: "urn:xmpp:ping", local: "ping"},
		3: {in: `<iq xmlns='jabber:server'><x/></iq>`, space: "jabber:server", local: "x"},
		4: {in: `<iq/>`, err: errNoElement},
		5: {in: `<iq>text</iq>`, err: errNoElement},
		6: {in: ``, err: errNoElement},
		// The shapes of the fast path, and those it leaves to the decoder.
		7:  {in: `<iq type='get' id='a>b'><ping xmlns="urn:xmpp:ping"></ping></iq>`, space: "urn:xmpp:ping", local: "ping"},
		8:  {in: "<iq>\n  <ping\tid='x' xmlns = 'urn:xmpp:ping' /></iq>", space: "urn:xmpp:ping", local: "ping"},
		9:  {in: `<iq><ping a='1' xmlns='urn:x&amp;y'/></iq>`, space: "urn:x&y", local: "ping"},
		10: {in: `<iq><![CDATA[x]]><q xmlns='a'/></iq>`, space: "a", local: "q"},
		11: {in: `<iq xmlns='jabber:server'><q xmlns:a='b'/></iq>`, space: "jabber:server", local: "q"},
		12: {in: `<iq xmlns:p='urn:xmpp:ping'><p:ping xmlns='urn:x'/></iq>`, space: "urn:xmpp:ping", local: "ping"},
		13: {in: "<iq><q xmlns='a\r\nb'/></iq>", space: "a\nb", local: "q"},
		14: {in: `<p:iq xmlns:p='jabber:server'><query xmlns="jabber:iq:version"/></p:iq>`, space: "jabber:iq:version", local: "query"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			space, local, err := firstChild([]byte(tc.in))
			if !errors.Is(err, tc.err) || space != tc.space || local != tc.local {
				t.Errorf("firstChild = %q, %q, %v; want %q, %q, %v", space, local, err, tc.space, tc.local, tc.err)
			}
			// The fast path, where it answers, answers as the decoder.
			if fs, fl, ok := firstChildFast([]byte(tc.in)); ok {
				xs, xl, err := firstChildXML([]byte(tc.in))
				if err != nil || fs != xs || fl != xl {
					t.Errorf("fast path: %q, %q; decoder: %q, %q, %v", fs, fl, xs, xl, err)
				}
			}
		})
	}
}

// FuzzFirstChild holds the fast path to the decoder on every stanza the
// Manager would deliver: where it answers, it answers the same.
func FuzzFirstChild(f *testing.F) {
	for _, s := range []string{
		`<iq from='h.test' to='s.test' id='p' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq id='a>b' type='get'> <q xmlns="x&amp;y" a='1'><r/></q></iq>`,
		`<iq xmlns:p='urn:xmpp:ping' type='get'><p:ping/></iq>`,
		"<iq><q a='\t' xmlns='a\r\nb'/></iq>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := s2s.ParseStanza(raw)
		if err != nil {
			return
		}
		fs, fl, ok := firstChildFast(in.Raw)
		if !ok {
			return
		}
		xs, xl, err := firstChildXML(in.Raw)
		if err != nil || fs != xs || fl != xl {
			t.Fatalf("%q: fast path %q, %q; decoder %q, %q, %v", in.Raw, fs, fl, xs, xl, err)
		}
	})
}

// FuzzAnswer checks, for every stanza the Manager would deliver, that an
// answer is itself a stanza the Manager accepts, addressed back to the
// sender, and that echo swaps exactly the addresses.
func FuzzAnswer(f *testing.F) {
	for _, s := range []string{
		`<iq from='h.test' to='s.test' id='p' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq from='h.test' to='s.test' id='p' type='set'><q xmlns='x'/></iq>`,
		`<message from='a@h.test' to='b@s.test' id='m' type='chat' xml:lang='en'><body>hi &amp; bye</body></message>`,
		`<message xmlns='jabber:client' from='a' to='b'/>`,
		`<presence from='a' to='b'/>`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, echo bool) {
		in, err := s2s.ParseStanza(raw)
		if err != nil {
			return
		}
		out, err := answer(in, echo)
		if err != nil || out == nil {
			return
		}
		got, err := s2s.ParseStanza(out)
		if err != nil {
			t.Fatalf("answer to %q is %q, which ParseStanza refuses: %v", raw, out, err)
		}
		if got.From != in.To || got.To != in.From || got.ID != in.ID || got.Name != in.Name {
			t.Fatalf("answer to %q is %q: envelope %+v", raw, out, got)
		}
		if in.Name != "message" {
			return
		}
		if got.Type != in.Type {
			t.Fatalf("echo of %q is %q: type %q", raw, out, got.Type)
		}
		// Swapping back and forth reaches a fixed point: nothing but the
		// two addresses moves.
		back, err := swapAddresses(out)
		if err != nil {
			t.Fatal(err)
		}
		again, err := swapAddresses(back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("echo of %q is %q, but swapping twice more gives %q", raw, out, again)
		}
	})
}

// FuzzSwapAddresses feeds arbitrary bytes, not only stanzas the Manager
// accepted: the rewrite must fail cleanly or reach a fixed point in two
// swaps.
func FuzzSwapAddresses(f *testing.F) {
	for _, s := range []string{
		`<message from='a' to='b'/>`,
		`<p:message xmlns:p='jabber:server' from="a&amp;" to='b' xml:lang='en'><body/></p:message>`,
		`<?xml version='1.0'?><message to='b'>x</message>`,
		`<a b='>'>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		once, err := swapAddresses(raw)
		if err != nil {
			return
		}
		twice, err := swapAddresses(once)
		if err != nil {
			t.Fatalf("swap(%q) = %q, which swap refuses: %v", raw, once, err)
		}
		thrice, err := swapAddresses(twice)
		if err != nil || !bytes.Equal(thrice, once) {
			t.Fatalf("swap(%q) = %q, twice more = %q (%v)", raw, once, thrice, err)
		}
	})
}
