package main

import (
	"net"
	"slices"
	"strconv"
	"testing"

	"github.com/xmpp-s2s/federation/internal/interop"
	"github.com/xmpp-s2s/federation/internal/testcert"
)

func testcertOptions(domain string) testcert.Options {
	return testcert.Options{DNSNames: []string{domain}}
}

// peerSetup starts one real peer server with a user on it, reaching our
// server's s2s listener, and returns its domain, s2s address and client
// port.
type peerSetup func(t *testing.T, w *world, ourS2S string) (domain string, s2sAddr string, c2sAddr string)

func prosodyPeer(t *testing.T, w *world, ourS2S string) (string, string, string) {
	leaf, err := w.ca.Leaf(testcertOptions("pro.test"))
	if err != nil {
		t.Fatal(err)
	}
	p := interop.StartProsody(t, interop.ProsodyConfig{
		Domain:  "pro.test",
		TLS:     "optional",
		CertPEM: leaf.PEM,
		Routes:  []interop.Route{route("go.test", ourS2S)},
		Users:   []interop.User{{Name: "romeo", Password: "montague"}},
	})
	return p.Domain, "127.0.0.1:" + strconv.Itoa(p.Port), "127.0.0.1:" + strconv.Itoa(p.C2SPort)
}

func ejabberdPeer(t *testing.T, w *world, ourS2S string) (string, string, string) {
	leaf, err := w.ca.Leaf(testcertOptions("ej.test"))
	if err != nil {
		t.Fatal(err)
	}
	e := interop.StartEjabberd(t, interop.EjabberdConfig{
		Domain:  "ej.test",
		TLS:     "optional",
		CertPEM: leaf.PEM,
		Routes:  []interop.Route{route("go.test", ourS2S)},
		Users:   []interop.User{{Name: "romeo", Password: "montague"}},
	})
	return e.Domain, "127.0.0.1:" + strconv.Itoa(e.Port), "127.0.0.1:" + strconv.Itoa(e.C2SPort)
}

func route(domain, addr string) interop.Route {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return interop.Route{Domain: domain, Host: host, Port: p}
}

// TestInteropClients runs real clients (slixmpp, from Debian's
// python3-slixmpp) on both sides: users on our server and a user on
// Prosody, then on ejabberd, exchange messages and presence both ways, and
// a message to an unknown remote user and one to an unreachable domain come
// back to the sending client as the stanza errors they should.
func TestInteropClients(t *testing.T) {
	for _, peer := range []struct {
		name  string
		setup peerSetup
	}{{"prosody", prosodyPeer}, {"ejabberd", ejabberdPeer}} {
		t.Run(peer.name, func(t *testing.T) {
			w := newWorld(t)
			c2s, s2sLn := listen(t)
			dead, _ := listen(t)
			deadAddr := dead.Addr().String()
			dead.Close() // connection refused from now on

			domain, peerS2S, peerC2S := peer.setup(t, w, s2sLn.Addr().String())
			s := w.start(t, "go.test", c2s, s2sLn,
				"use_starttls = \"optional\"\naddress = ["+address(domain, peerS2S)+", "+address("dead.test", deadAddr)+"]",
				"juliet:capulet", "nurse:angelica", "tybalt:prince")
			ca := w.ca.PEM()
			ours := func(user, pass, mech string) *interop.Client {
				return interop.StartClient(t, interop.ClientConfig{JID: user + "@go.test", Password: pass, Addr: s.c2s, CAPEM: ca, Mechanism: mech})
			}
			juliet := ours("juliet", "capulet", "")     // slixmpp picks: SCRAM-SHA-256
			nurse := ours("nurse", "angelica", "PLAIN") // each mechanism once
			ours("tybalt", "prince", "SCRAM-SHA-1")     // only logs in
			romeo := interop.StartClient(t, interop.ClientConfig{JID: "romeo@" + domain, Password: "montague", Addr: peerC2S, CAPEM: ca})
			romeoBare := "romeo@" + domain

			from := func(kind, typ, bare string) func(interop.Event) bool {
				return func(e interop.Event) bool {
					return e.Event == kind && e.Type == typ && interop.Bare(e.From) == bare
				}
			}

			// Messages both ways.
			juliet.Message(romeoBare, "chat", "m1", "Wherefore art thou?")
			m := romeo.Expect("juliet's message", from("message", "chat", "juliet@go.test"))
			if m.Body != "Wherefore art thou?" || m.From != juliet.JID {
				t.Fatalf("romeo got %+v, want the body from %s", m, juliet.JID)
			}
			romeo.Message(juliet.JID, "chat", "m2", "By a name I know not")
			if m := juliet.Expect("romeo's answer", from("message", "chat", romeoBare)); m.Body != "By a name I know not" {
				t.Fatalf("juliet got %+v", m)
			}

			// Subscriptions both ways; presence follows them.
			juliet.Presence(romeoBare, "subscribe", "")
			romeo.Expect("juliet's subscription request", from("presence", "subscribe", "juliet@go.test"))
			romeo.Presence("juliet@go.test", "subscribed", "")
			juliet.Expect("romeo's approval", from("presence", "subscribed", romeoBare))
			juliet.Expect("romeo's presence after the approval", from("presence", "", romeoBare))

			romeo.Presence("juliet@go.test", "subscribe", "")
			juliet.Expect("romeo's subscription request", from("presence", "subscribe", romeoBare))
			juliet.Presence(romeoBare, "subscribed", "")
			romeo.Expect("juliet's approval", from("presence", "subscribed", "juliet@go.test"))
			romeo.Expect("juliet's presence after the approval", from("presence", "", "juliet@go.test"))

			juliet.Presence("", "", "on the balcony")
			romeo.Expect("juliet's new status", func(e interop.Event) bool {
				return from("presence", "", "juliet@go.test")(e) && e.Status == "on the balcony"
			})
			romeo.Presence("", "", "in the orchard")
			juliet.Expect("romeo's new status", func(e interop.Event) bool {
				return from("presence", "", romeoBare)(e) && e.Status == "in the orchard"
			})

			// Directed presence, from a user with no subscription.
			nurse.Presence(romeo.JID, "", "Anon!")
			romeo.Expect("the nurse's directed presence", func(e interop.Event) bool {
				return from("presence", "", "nurse@go.test")(e) && e.Status == "Anon!"
			})

			// Our domain answers ping and disco#info, to our users and,
			// over the federation, to the peer's.
			for _, c := range []*interop.Client{juliet, romeo} {
				c.Ping("go.test")
				c.Expect("the pong of go.test", func(e interop.Event) bool { return e.Event == "pong" && e.From == "go.test" })
				c.Disco("go.test")
				d := c.Expect("the disco#info of go.test", func(e interop.Event) bool { return e.Event == "disco" && e.From == "go.test" })
				if !slices.Contains(d.Identities, "server/im") || !slices.Contains(d.Features, "urn:xmpp:ping") ||
					!slices.Contains(d.Features, "http://jabber.org/protocol/disco#info") {
					t.Fatalf("disco#info of go.test: %+v", d)
				}
			}
			juliet.Ping(domain)
			juliet.Expect("the pong of "+domain, func(e interop.Event) bool { return e.Event == "pong" && e.From == domain })

			// iq between users, both ways: each client answers pings.
			juliet.Ping(romeo.JID)
			juliet.Expect("romeo's pong", func(e interop.Event) bool { return e.Event == "pong" && e.From == romeo.JID })
			romeo.Ping(juliet.JID)
			romeo.Expect("juliet's pong", func(e interop.Event) bool { return e.Event == "pong" && e.From == juliet.JID })

			// Errors come back to the sending client.
			nurse.Message("nobody@"+domain, "chat", "e1", "Is anyone there?")
			e := nurse.Expect("the error for an unknown user", from("message", "error", "nobody@"+domain))
			if e.Error != "service-unavailable" || e.ID != "e1" {
				t.Fatalf("nurse got %+v, want service-unavailable for e1", e)
			}
			nurse.Message("friar@dead.test", "chat", "e2", "The letter")
			e = nurse.Expect("the error for an unreachable domain", from("message", "error", "friar@dead.test"))
			if e.Error != "remote-server-not-found" || e.ID != "e2" {
				t.Fatalf("nurse got %+v, want remote-server-not-found for e2", e)
			}
		})
	}
}
