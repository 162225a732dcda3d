package wire_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/xmpp-s2s/federation/internal/wire"
	"mellium.im/xmpp/stream"
)

func ExampleReader() {
	conn := strings.NewReader(`<?xml version='1.0'?>` +
		`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'` +
		` xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>` +
		`<db:result from='a.example' to='b.example'>c0ffee</db:result>` +
		`<message from='juliet@a.example' to='romeo@b.example'><body>hi</body></message>` +
		`</stream:stream>`)

	r := wire.NewReader(conn, wire.DefaultLimits)
	h, err := r.ReadHeader()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stream from", h.From, "to", h.To, "dialback:", h.Dialback)
	for {
		e, err := r.Next()
		var se stream.Error
		switch {
		case err == io.EOF:
			fmt.Println("closed by peer")
			return
		case errors.As(err, &se):
			// Send it back: wire.WriteError(conn, se).
			fmt.Println("stream error:", se.Err)
			return
		case err != nil:
			fmt.Println(err)
			return
		}
		fmt.Printf("{%s}%s from=%s: %s\n", e.Name.Space, e.Name.Local, e.From, e.Raw)
	}
	// Output:
	// stream from a.example to b.example dialback: true
	// {jabber:server:dialback}result from=a.example: <db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>c0ffee</db:result>
	// {jabber:server}message from=juliet@a.example: <message from='juliet@a.example' to='romeo@b.example'><body>hi</body></message>
	// closed by peer
}

func ExampleReader_limits() {
	conn := strings.NewReader(`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>` +
		`<message><body>` + strings.Repeat("spam", 1000) + `</body></message>`)
	r := wire.NewReader(conn, wire.Limits{MaxElementSize: 1024, MaxDepth: 8})
	if _, err := r.ReadHeader(); err != nil {
		fmt.Println(err)
		return
	}
	_, err := r.Next()
	var se stream.Error
	if errors.As(err, &se) {
		fmt.Println(se.Err)
	}
	// Output:
	// policy-violation
}

func ExampleParseStanza() {
	// A stanza as a c2s session produced it.
	e, err := wire.ParseStanza([]byte(`<message xmlns='jabber:client' to='romeo@b.example' type='chat'><body>hi</body></message>`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Name.Local, e.To, e.Type)
	fmt.Println(string(e.Raw))
	// Output:
	// message romeo@b.example chat
	// <message xmlns='jabber:server' to='romeo@b.example' type='chat'><body>hi</body></message>
}

func ExampleWriteHeader() {
	err := wire.WriteHeader(os.Stdout, wire.Header{From: "a.example", To: "b.example"})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// <?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>
}

func ExampleWriteError() {
	err := wire.WriteError(os.Stdout, stream.HostUnknown)
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// <error xmlns="http://etherx.jabber.org/streams"><host-unknown xmlns="urn:ietf:params:xml:ns:xmpp-streams"></host-unknown></error></stream:stream>
}

func ExampleParseFeatures() {
	conn := strings.NewReader(`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>` +
		`<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>` +
		`<dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`)
	r := wire.NewReader(conn, wire.DefaultLimits)
	if _, err := r.ReadHeader(); err != nil {
		fmt.Println(err)
		return
	}
	e, err := r.Next()
	if err != nil {
		fmt.Println(err)
		return
	}
	fs, err := wire.ParseFeatures(e)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range fs {
		fmt.Println(f.Name.Local, f.Required)
	}
	// Output:
	// starttls true
	// dialback false
}

func ExampleWriter() {
	// The link's goroutine writes every queued stanza, then flushes once
	// when its queue is empty: one syscall (and one TLS record) for many
	// stanzas.
	w := wire.NewWriter(os.Stdout, 0)
	for _, s := range []string{`<presence/>`, `<message/>`} {
		if _, err := io.WriteString(w, s); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// <presence/><message/>
}
