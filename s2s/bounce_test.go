package s2s

import (
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"
)

// TestBounceReply: the reply parses as a stanza with the swapped envelope,
// and the text survives quotes and markup.
func TestBounceReply(t *testing.T) {
	for i, tc := range []struct {
		raw, text string
		cond      stanza.Condition
		want      string // a piece of the reply
	}{
		{raw: `<message from='a@a.example' to='b@b.example' id='x'/>`, cond: stanza.RemoteServerNotFound,
			want: `<error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`},
		{raw: `<iq from='a.example' to='b.example' id='i&apos;1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`,
			cond: stanza.ResourceConstraint, text: `queue "full" <1000> & 'more'`,
			want: `<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>queue &#34;full&#34; &lt;1000&gt; &amp; &#39;more&#39;</text></error></iq>`},
		{raw: `<presence from='a@a.example/r' to='b@b.example'/>`, cond: stanza.PolicyViolation,
			want: `<presence xmlns='jabber:server' from='b@b.example' to='a@a.example/r' type='error'><error type='cancel'>`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			st, err := ParseStanza([]byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			reply := Bounce{Stanza: st, Condition: tc.cond, Text: tc.text}.Reply()
			if !strings.Contains(string(reply), tc.want) {
				t.Errorf("Reply() = %s\nwant it to contain %s", reply, tc.want)
			}
			back, err := ParseStanza(reply)
			if err != nil {
				t.Fatalf("Reply() = %s: %v", reply, err)
			}
			if back.Name != st.Name || back.From != st.To || back.To != st.From || back.ID != st.ID || back.Type != "error" {
				t.Errorf("reply envelope %+v for %+v", back, st)
			}
		})
	}
	errSt, _ := ParseStanza([]byte(`<message from='a@a.example' to='b@b.example' type='error'/>`))
	if r := (Bounce{Stanza: errSt, Condition: stanza.RemoteServerNotFound}).Reply(); r != nil {
		t.Errorf("Reply() of an error stanza = %s", r)
	}
}
