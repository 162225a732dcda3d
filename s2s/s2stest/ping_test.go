package s2stest

import (
	"bytes"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/xmpp-s2s/federation/s2s"
)

var pingCases = []struct {
	raw  string
	ping bool
}{
	{`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`, true},
	{`<iq xmlns='jabber:server' type='get' id='1'><ping xmlns='urn:xmpp:ping'></ping></iq>`, true},
	{`<iq type='get' id='1'><p:ping xmlns:p='urn:xmpp:ping'/></iq>`, true},
	{`<iq type='get' id='1'> <ping xmlns='urn:xmpp:ping'/> </iq>`, true},
	{`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'><extra/></ping></iq>`, true},
	{`<iq type='get' id='1'><ping/></iq>`, false},
	{`<iq type='get' id='1'><ping xmlns='urn:xmpp:pong'/></iq>`, false},
	{`<iq type='get' id='1'><query xmlns='jabber:iq:version'/></iq>`, false},
	{`<iq type='get' id='1'/>`, false},
	{`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>`, false},
	{`<message><ping xmlns='urn:xmpp:ping'/></message>`, false},
	{`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/>`, false},
	{`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq><iq/>`, false},
	{``, false},
	{`<iq`, false},
}

func TestIsPing(t *testing.T) {
	for i, tc := range pingCases {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if got := isPing([]byte(tc.raw)); got != tc.ping {
				t.Errorf("isPing(%s) = %v", tc.raw, got)
			}
		})
	}
}

func TestPingReply(t *testing.T) {
	const ping = `<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>`
	for i, tc := range []struct {
		in    s2s.Stanza
		reply string // "" for no reply
	}{
		{
			s2s.Stanza{Name: "iq", Type: "get", From: "host.example", To: "remote.example", ID: "p1", Raw: []byte(ping)},
			`<iq xmlns='jabber:server' type='result' from='remote.example' to='host.example' id='p1'/>`,
		},
		{
			s2s.Stanza{Name: "iq", Type: "get", From: "a@host.example/r", To: "remote.example", ID: `<'&">`, Raw: []byte(ping)},
			`<iq xmlns='jabber:server' type='result' from='remote.example' to='a@host.example/r' id='&lt;&#39;&amp;&#34;&gt;'/>`,
		},
		{s2s.Stanza{Name: "iq", Type: "set", From: "host.example", To: "remote.example", ID: "p", Raw: []byte(ping)}, ""},
		{s2s.Stanza{Name: "iq", Type: "result", From: "host.example", To: "remote.example", ID: "p", Raw: []byte(ping)}, ""},
		{s2s.Stanza{Name: "iq", Type: "get", To: "remote.example", ID: "p", Raw: []byte(ping)}, ""},
		{s2s.Stanza{Name: "iq", Type: "get", From: "host.example", To: "remote.example", ID: "p",
			Raw: []byte(`<iq type='get'><query xmlns='jabber:iq:version'/></iq>`)}, ""},
		{s2s.Stanza{Name: "message", Type: "get", From: "host.example", To: "remote.example", ID: "p", Raw: []byte(ping)}, ""},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, ok := pingReply(tc.in)
			if ok != (tc.reply != "") || string(got) != tc.reply {
				t.Errorf("pingReply = %q, %v; want %q", got, ok, tc.reply)
			}
		})
	}
}

// FuzzIsPing checks that isPing never panics and that whatever it takes for
// a ping yields a reply the Manager accepts as a stanza.
func FuzzIsPing(f *testing.F) {
	for _, tc := range pingCases {
		f.Add([]byte(tc.raw), "p1")
	}
	f.Fuzz(func(t *testing.T, raw []byte, id string) {
		if !isPing(raw) {
			return
		}
		if !bytes.Contains(raw, []byte("urn:xmpp:ping")) {
			t.Fatalf("isPing(%q) without the ping namespace", raw)
		}
		reply, ok := pingReply(s2s.Stanza{Name: "iq", Type: "get", From: "host.example", To: "remote.example", ID: id, Raw: raw})
		if !ok {
			t.Fatal("a ping got no reply")
		}
		if !xmlValid(id) {
			return // the id could not have come off a stream
		}
		st, err := s2s.ParseStanza(reply)
		if err != nil {
			t.Fatalf("reply %s: %v", reply, err)
		}
		if st.ID != id || st.Type != "result" || st.To != "host.example" {
			t.Fatalf("reply %s parsed as %+v", reply, st)
		}
	})
}

// xmlValid reports whether s holds only XML characters (XML 1.0 §2.2), as
// every attribute value read off a stream does.
func xmlValid(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}
