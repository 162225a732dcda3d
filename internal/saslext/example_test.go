package saslext_test

import (
	"encoding/xml"
	"fmt"
	"strings"

	"mellium.im/sasl"

	"github.com/xmpp-s2s/federation/internal/saslext"
)

// An initiating server authenticates a.test to b.test with EXTERNAL: its
// certificate already did the work, so it sends an empty authzid.
func Example() {
	client := sasl.NewClient(saslext.Mechanism)
	_, resp, _ := client.Step(nil)
	auth := saslext.Auth(saslext.Name, resp, true)
	fmt.Println(string(auth))

	// The receiving server parses the <auth/> and asks its permission
	// function, which would check that the certificate names a.test.
	d := xml.NewDecoder(strings.NewReader(string(auth)))
	tok, _ := d.Token()
	mech, initial, _, _ := saslext.ParseAuth(d, tok.(xml.StartElement))
	server := sasl.NewServer(saslext.Mechanism, func(n *sasl.Negotiator) bool {
		_, _, authzid := n.Credentials()
		return len(authzid) == 0 || string(authzid) == "a.test"
	})
	if _, _, err := server.Step(initial); err != nil {
		fmt.Println(string(saslext.Failure(saslext.NotAuthorized, "")))
		return
	}
	fmt.Println(mech, saslext.Success)
	// Output:
	// <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>
	// EXTERNAL <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>
}

// A receiving server offers EXTERNAL only to a peer whose certificate it
// verified for the stream's 'from'.
func ExampleFeature() {
	fmt.Println(string(saslext.Feature(saslext.Name)))
	// Output:
	// <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>
}
