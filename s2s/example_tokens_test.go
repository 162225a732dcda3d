package s2s_test

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/s2s"
)

// A stanza delivered by the Manager goes to a client as tokens: with
// mellium, session.Send(ctx, st.TokenReader()). Its elements carry no
// namespace of their own, so on a client stream they are in jabber:client.
func ExampleStanza_TokenReader() {
	st, _ := s2s.ParseStanza([]byte(`<message xmlns='jabber:server' from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat'><body>Art thou not Romeo?</body></message>`))

	enc := xml.NewEncoder(os.Stdout) // a client stream, in a real server
	xmlstream.Copy(enc, st.TokenReader())
	enc.Flush()
	// Output:
	// <message from="juliet@capulet.example/balcony" to="romeo@montague.example" type="chat"><body>Art thou not Romeo?</body></message>
}

// A client's stanza, read from its stream as tokens (a mellium Handler gets
// the start element and a reader for the rest), becomes a Stanza for
// SendStanza. The server stamps the client's address on it first.
func ExampleReadStanza() {
	client := xml.NewDecoder(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>` +
		`<message to='juliet@capulet.example' type='chat'><body>Neither, fair saint.</body></message>`))
	client.Token() // the stream header
	tok, _ := client.Token()
	start := tok.(xml.StartElement)
	start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: "romeo@montague.example/orchard"})

	st, err := s2s.ReadStanza(client, &start, 1<<20)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.From, "->", st.To)
	fmt.Println(string(st.Raw))
	// Output:
	// romeo@montague.example/orchard -> juliet@capulet.example
	// <message xmlns="jabber:server" to="juliet@capulet.example" type="chat" from="romeo@montague.example/orchard"><body>Neither, fair saint.</body></message>
}

// A bounce is answered to the local sender, and a stanza for a user the host
// does not have is answered back to the remote sender, with ErrorReply; the
// reply is routed by its To like any stanza.
func ExampleStanza_ErrorReply() {
	var bounced s2s.Bounce // as the Bounce callback receives it
	bounced.Stanza, _ = s2s.ParseStanza([]byte(`<message from='romeo@montague.example/orchard' to='juliet@unreachable.example' id='m1'><body>Hello?</body></message>`))
	bounced.Condition, bounced.Text = stanza.RemoteServerNotFound, "unreachable.example: no address"

	reply, _ := bounced.Stanza.ErrorReply(bounced.Condition, bounced.Text)
	fmt.Println("route to", reply.To)
	fmt.Println(string(reply.Raw))
	// Output:
	// route to romeo@montague.example/orchard
	// <message xmlns='jabber:server' from='juliet@unreachable.example' to='romeo@montague.example/orchard' id='m1' type='error'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>unreachable.example: no address</text></error></message>
}

// A user's presence fans out to each subscriber with a new 'to'.
func ExampleStanza_Readdress() {
	presence, _ := s2s.ParseStanza([]byte(`<presence xmlns='jabber:server' from='romeo@montague.example/orchard'><show>away</show></presence>`))
	for _, subscriber := range []string{"juliet@capulet.example", "benvolio@montague.example"} {
		st, err := presence.Readdress(presence.From, subscriber)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(string(st.Raw))
	}
	// Output:
	// <presence xmlns="jabber:server" from="romeo@montague.example/orchard" to="juliet@capulet.example"><show>away</show></presence>
	// <presence xmlns="jabber:server" from="romeo@montague.example/orchard" to="benvolio@montague.example"><show>away</show></presence>
}
