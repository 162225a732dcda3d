package dialback_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
)

// The key of XEP-0185's example.
func ExampleKey() {
	fmt.Println(dialback.Key("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F"))
	// Output: 37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643
}

// A Secret never prints itself.
func ExampleSecret() {
	shared := dialback.Secret("82gc8b23ct7824")
	fmt.Printf("shared = %v\n", shared)
	// Output: shared = [REDACTED]
}

// An initiating server asks for a domain pair on its outgoing stream, then
// hands the answer the stream's reader decoded to the same Outbound.
func ExampleOutbound() {
	out := dialback.NewOutbound(dialback.Secret("s3cr3tf0rd14lb4ck"), "D60000229F")
	req, err := out.Request("capulet.example", "montague.example")
	if err != nil {
		panic(err)
	}
	e := xml.NewEncoder(os.Stdout)
	req.WriteXML(e)
	e.Flush()
	fmt.Println()

	// What the peer answered, as the stream's reader decoded it.
	pair, err := out.Resolve(dialback.Result{From: "montague.example", To: "capulet.example", Type: dialback.Valid})
	fmt.Println(pair.From, "->", pair.To, "accepted:", err == nil)
	// Output:
	// <db:result from="capulet.example" to="montague.example">b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>
	// capulet.example -> montague.example accepted: true
}

// A receiving server answers a <db:result/> after asking the authoritative
// server, and the stream's stanzas are then checked against its Pairs.
func ExampleInbound_Handle() {
	in := dialback.Inbound{
		IsLocal: func(d string) bool { return d == "montague.example" },
		Authority: dialback.AuthorityFunc(func(ctx context.Context, v dialback.Verify) (dialback.Type, error) {
			// A real server sends v over a stream to v.To's server, with an
			// Outbound, and returns its answer.
			return dialback.Valid, nil
		}),
	}
	var pairs dialback.Pairs
	req := dialback.Result{From: "capulet.example", To: "montague.example", Key: "b4835385…"}
	ans, err := in.Handle(context.Background(), "D60000229F", &pairs, req)
	fmt.Println(ans.Type, err)
	fmt.Println(pairs.Has("capulet.example", "montague.example"), pairs.Has("evil.example", "montague.example"))
	// Output:
	// valid <nil>
	// true false
}

// An authoritative server answers a <db:verify/> by recomputing the key.
func ExampleInbound_Answer() {
	in := dialback.Inbound{
		Keys:    dialback.Secret("d14lb4ck43v3r"),
		IsLocal: func(d string) bool { return d == "montague.example" },
	}
	ans, _ := in.Answer(dialback.Verify{
		From: "capulet.example", To: "montague.example", ID: "417GAF25",
		Key: "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d",
	})
	e := xml.NewEncoder(os.Stdout)
	ans.WriteXML(e)
	e.Flush()
	// Output: <db:verify from="montague.example" to="capulet.example" id="417GAF25" type="valid"></db:verify>
}

// The stream's reader passes dialback elements to Decode and the rest on.
func ExampleDecode() {
	stream := `<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback'
	  xmlns:stream='http://etherx.jabber.org/streams' id='417GAF25'>
	  <db:result from='montague.example' to='capulet.example' type='error'>
	    <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>
	  </db:result>`
	d := xml.NewDecoder(strings.NewReader(stream))
	d.Token() // the stream header
	for {
		tok, err := d.Token()
		if err != nil {
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Space != dialback.NS {
			continue
		}
		el, err := dialback.Decode(d, start)
		if r, ok := el.(dialback.Result); ok && err == nil {
			fmt.Println(r.From, r.Type, r.Err.Condition)
		}
	}
	// Output: montague.example error item-not-found
}

// The stream feature a receiving server lists.
func ExampleFeature() {
	e := xml.NewEncoder(os.Stdout)
	dialback.Feature{Errors: true}.WriteXML(e)
	e.Flush()
	// Output: <dialback xmlns="urn:xmpp:features:dialback"><errors></errors></dialback>
}

// A rotation: keys are made with the new secret at once, and keys made with
// the old one are still accepted for the grace period.
func ExampleKeyring() {
	gen := dialback.FirstGeneration("old secret")
	ring := dialback.NewKeyring(gen)
	before, _ := ring.Key("montague.example", "capulet.example", "D60000229F")

	ring.Set(gen.Next("new secret", time.Minute, time.Now()))
	after, _ := ring.Key("montague.example", "capulet.example", "D60000229F")

	for _, key := range []string{before, after} {
		ok, _ := dialback.Check(ring, key, "montague.example", "capulet.example", "D60000229F")
		fmt.Println(ok)
	}
	fmt.Println(before != after, ring.Generation().Version)
	// Output:
	// true
	// true
	// true 2
}

// A stream checks each stanza's domains against its Pairs and reads them as
// they were authenticated: in normal form, however the peer wrote them.
func ExamplePairs_Match() {
	var pairs dialback.Pairs
	if err := pairs.Add("Capulet.Example", "montague.example"); err != nil {
		fmt.Println(err)
		return
	}
	p, ok := pairs.Match("CAPULET.example.", "montague.example")
	fmt.Println(p.From, p.To, ok)
	_, ok = pairs.Match("evil.example", "montague.example")
	fmt.Println(ok)
	// Output:
	// capulet.example montague.example true
	// false
}
