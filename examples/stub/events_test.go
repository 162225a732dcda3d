package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/s2s"
)

func TestEventLines(t *testing.T) {
	in := s2s.LinkInfo{Direction: s2s.Incoming, Local: "stub.test", Remote: "host.test",
		TLSVersion: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, Auth: s2s.AuthDialback}
	out := s2s.LinkInfo{Direction: s2s.Outgoing, Local: "stub.test", Remote: "host.test", Auth: s2s.AuthDialback}
	msg := s2s.Stanza{Name: "message", From: "a@host.test", To: "b@stub.test", ID: "m1", Raw: []byte(`<message from='a@host.test' to='b@stub.test' id='m1'><body>&lt;&amp;</body></message>`)}
	closedRead := fmt.Errorf("wire: read: %w", &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed})
	for i, tc := range []struct {
		emit func(e *events)
		want string
	}{
		0: {emit: func(e *events) { e.observe(s2s.Event{Kind: s2s.LinkUp, Link: in}) },
			want: `{"event":"link-up","direction":"in","local":"stub.test","remote":"host.test","tls":"TLS1.3","cipher":"TLS_AES_128_GCM_SHA256","auth":"dialback"}`},
		1: {emit: func(e *events) { e.observe(s2s.Event{Kind: s2s.LinkUp, Link: out}) },
			want: `{"event":"link-up","direction":"out","local":"stub.test","remote":"host.test","tls":"none","cipher":"none","auth":"dialback"}`},
		2: {emit: func(e *events) { e.observe(s2s.Event{Kind: s2s.LinkDown, Link: out}) },
			want: `{"event":"link-down","direction":"out","local":"stub.test","remote":"host.test","reason":"closed"}`},
		3: {emit: func(e *events) {
			e.observe(s2s.Event{Kind: s2s.LinkDown, Link: out, Err: s2s.ErrPeerClosed})
		},
			want: `{"event":"link-down","direction":"out","local":"stub.test","remote":"host.test","reason":"closed"}`},
		4: {emit: func(e *events) { e.observe(s2s.Event{Kind: s2s.LinkDown, Link: in}) },
			want: `{"event":"link-down","direction":"in","local":"stub.test","remote":"host.test","reason":"closed"}`},
		// A connection that failed under the link is not a clean close.
		5: {emit: func(e *events) { e.observe(s2s.Event{Kind: s2s.LinkDown, Link: in, Err: closedRead}) },
			want: `{"event":"link-down","direction":"in","local":"stub.test","remote":"host.test","reason":"wire: read: read tcp: use of closed network connection"}`},
		6: {emit: func(e *events) {
			e.observe(s2s.Event{Kind: s2s.LinkFailed, Link: s2s.LinkInfo{Direction: s2s.Outgoing, Local: "stub.test", Remote: "x.test"}, Err: errors.New("refused")})
		}, want: `{"event":"error","direction":"out","local":"stub.test","remote":"x.test","op":"link","error":"refused"}`},
		13: {emit: func(e *events) {
			e.observe(s2s.Event{Kind: s2s.AuthFailed, Link: s2s.LinkInfo{Direction: s2s.Incoming, Local: "stub.test", Remote: "x.test"}, Err: errors.New("key not valid")})
		}, want: `{"event":"error","direction":"in","local":"stub.test","remote":"x.test","op":"auth","error":"key not valid"}`},
		// Stanza and bounce events come from the callbacks, not the observer.
		7:  {emit: func(e *events) { e.observe(s2s.Event{Kind: s2s.StanzaIn, Link: in, Stanza: msg}) }},
		8:  {emit: func(e *events) { e.observe(s2s.Event{Kind: s2s.Bounced, Bounce: s2s.Bounce{Stanza: msg}}) }},
		9:  {emit: func(e *events) { e.observe(s2s.Event{Kind: s2s.StanzaOut, Link: out, Stanza: msg}) }},
		10: {emit: func(e *events) { e.stanza(msg) }, want: `{"event":"stanza","from":"a@host.test","to":"b@stub.test","id":"m1","xml":"<message from='a@host.test' to='b@stub.test' id='m1'><body>&lt;&amp;</body></message>"}`},
		11: {emit: func(e *events) {
			e.bounce(s2s.Bounce{Stanza: msg, Condition: stanza.RemoteServerNotFound, Text: `cannot link "x"`})
		}, want: `{"event":"bounce","from":"a@host.test","to":"b@stub.test","id":"m1","condition":"remote-server-not-found","text":"cannot link \"x\"","xml":"<message from='a@host.test' to='b@stub.test' id='m1'><body>&lt;&amp;</body></message>"}`},
		12: {emit: func(e *events) { e.sendFailed([]byte("<x"), errors.New("s2s: not a stanza")) },
			want: `{"event":"error","op":"send","error":"s2s: not a stanza","xml":"<x"}`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var buf bytes.Buffer
			e := newEvents(&buf)
			tc.emit(e)
			e.close()
			want := tc.want
			if want != "" {
				want += "\n"
			}
			if got := buf.String(); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}
