package main

import (
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/xmpp-s2s/federation/s2s"
)

// routerWith returns a router for a.test with the given users, and a bound
// client for each, whose queues the test reads directly (no network).
func routerWith(t *testing.T, users ...string) (*router, map[string]*client) {
	t.Helper()
	acc := make(accounts)
	for _, u := range users {
		if err := acc.add("test", u+"@a.test", "pw", map[string]bool{"a.test": true}); err != nil {
			t.Fatal(err)
		}
	}
	r := newRouter(slog.New(slog.NewTextHandler(io.Discard, nil)), []string{"a.test"}, acc)
	clients := make(map[string]*client)
	for _, u := range users {
		c := newClient()
		if _, err := r.bind(u+"@a.test", "res", c); err != nil {
			t.Fatal(err)
		}
		clients[u] = c
	}
	return r, clients
}

func stanzaOf(t *testing.T, raw string) s2s.Stanza {
	t.Helper()
	st, err := s2s.ParseStanza([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// queued returns what waits for a client.
func queued(c *client) []s2s.Stanza {
	var out []s2s.Stanza
	for {
		select {
		case st := <-c.out:
			out = append(out, st)
		default:
			return out
		}
	}
}

// Every stanza a client sends is delivered or answered; only presence and
// answers (result, error) may end silently.
func TestRouterAnswers(t *testing.T) {
	for i, tc := range []struct {
		raw  string
		want string // the error condition alice gets back; "" for none
	}{
		0: {`<message to='a@b@c' id='x'><body>?</body></message>`, "jid-malformed"},
		1: {`<message to='a.test' id='x'><body>?</body></message>`, "service-unavailable"},
		2: {`<iq to='a.test' type='set' id='x'><query xmlns='urn:example'/></iq>`, "service-unavailable"},
		3: {`<iq to='nobody@a.test' type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>`, "service-unavailable"},
		4: {`<iq to='nobody@a.test' type='result' id='x'/>`, ""},
		5: {`<presence to='nobody@a.test' type='subscribe'/>`, ""},
		6: {`<message to='nobody@a.test' type='error' id='x'/>`, ""},
		7: {`<presence type='probe'/>`, "bad-request"},
		8: {`<message to='bob@a.test/elsewhere' type='groupchat' id='x'><body>?</body></message>`, "service-unavailable"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r, cl := routerWith(t, "alice", "bob")
			alice := cl["alice"]
			st, err := stanzaOf(t, tc.raw).Readdress("alice@a.test/res", toOf(t, tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			r.fromClient(alice, st)
			got := queued(alice)
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("alice got %s, want nothing", got[0].Raw)
				}
				return
			}
			if len(got) != 1 || got[0].Type != "error" || errorCondition(got[0]) != tc.want {
				t.Fatalf("alice got %v, want one %s error", got, tc.want)
			}
			if q := queued(cl["bob"]); len(q) != 0 {
				t.Fatalf("bob got %s", q[0].Raw)
			}
		})
	}
}

func toOf(t *testing.T, raw string) string {
	return stanzaOf(t, raw).To
}

// A client that does not read costs its senders resource-constraint
// errors, one per stanza that did not fit, never a lost stanza.
func TestRouterSlowClient(t *testing.T) {
	r, cl := routerWith(t, "alice", "bob")
	const n = clientQueue + 40
	for i := range n {
		st := stanzaOf(t, `<message xmlns='jabber:server' from='alice@a.test/res' to='bob@a.test/res' id='`+strconv.Itoa(i)+`'><body>x</body></message>`)
		r.fromClient(cl["alice"], st)
	}
	delivered := queued(cl["bob"])
	errs := queued(cl["alice"])
	if len(delivered) != clientQueue || len(errs) != n-clientQueue {
		t.Fatalf("%d delivered and %d errors, want %d and %d", len(delivered), len(errs), clientQueue, n-clientQueue)
	}
	for i, e := range errs {
		if errorCondition(e) != "resource-constraint" || e.ID != strconv.Itoa(clientQueue+i) {
			t.Fatalf("error %d: %s", i, e.Raw)
		}
	}
	// A session that ended takes nothing more.
	cl["bob"].stop()
	r.fromClient(cl["alice"], stanzaOf(t, `<message xmlns='jabber:server' from='alice@a.test/res' to='bob@a.test/res' id='late'/>`))
	if e := queued(cl["alice"]); len(e) != 1 || e[0].ID != "late" {
		t.Fatalf("after bob stopped, alice got %v", e)
	}
}

// Only an approval the user asked for counts (RFC 6121 §3.1.6): a peer
// cannot make itself a contact, nor grow the server's memory.
func TestRouterUnrequestedApproval(t *testing.T) {
	r, cl := routerWith(t, "alice")
	approve := func(from string) {
		r.fromRemote(stanzaOf(t, `<presence xmlns='jabber:server' from='`+from+`' to='alice@a.test' type='subscribed'/>`))
	}
	approve("mallory@evil.example")
	if got := queued(cl["alice"]); len(got) != 0 || len(r.subscribedTo) != 0 || r.roster("alice@a.test") != "<query xmlns='jabber:iq:roster'></query>" {
		t.Fatalf("an unrequested approval was taken: %v, %v", got, r.subscribedTo)
	}
	// Asked for, it counts once.
	r.fromClient(cl["alice"], stanzaOf(t, `<presence xmlns='jabber:server' from='alice@a.test/res' to='bob@b.example' type='subscribe'/>`))
	// (This router has no Manager: the request itself comes back as
	// service-unavailable, which is not what is tested here.)
	queued(cl["alice"])
	approve("bob@b.example")
	if got := queued(cl["alice"]); len(got) != 1 || got[0].Type != "subscribed" || !r.subscribedTo["alice@a.test"]["bob@b.example"] || len(r.asked) != 0 {
		t.Fatalf("the requested approval: %d stanzas, subscribedTo %v, asked %v", len(got), r.subscribedTo, r.asked)
	}
	approve("bob@b.example") // a repeat is ignored
	if got := queued(cl["alice"]); len(got) != 0 {
		t.Fatalf("a repeated approval was delivered: %s", got[0].Raw)
	}
}
