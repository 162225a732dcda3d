package resolver

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/internal/dnstest"
)

func pack(t testing.TB, id uint16, q string, qtype dnsmessage.Type, mod func(*dnsmessage.Message), rr ...dnsmessage.Resource) []byte {
	t.Helper()
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, Response: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(q + "."), Type: qtype, Class: dnsmessage.ClassINET}},
		Answers:   rr,
	}
	if mod != nil {
		mod(&m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseResponse(t *testing.T) {
	const name = "host.example.org"
	a := dnstest.A(name, "192.0.2.1")
	chaos := dnstest.A(name, "192.0.2.66")
	chaos.Header.Class = dnsmessage.ClassCHAOS
	for i, tc := range []struct {
		msg   []byte
		qtype dnsmessage.Type
		err   error // errMismatch, or nil
		bad   bool  // a malformed-message error
		addrs []string
		srvs  []srvRecord
		final string
		trunc bool
	}{
		0: {msg: pack(t, 7, name, typeA, nil, a), qtype: typeA, addrs: []string{"192.0.2.1"}, final: name},
		1: {msg: pack(t, 8, name, typeA, nil, a), qtype: typeA, err: errMismatch},
		2: {msg: pack(t, 7, name, typeA, func(m *dnsmessage.Message) { m.Header.Response = false }, a), qtype: typeA, err: errMismatch},
		3: {msg: pack(t, 7, "other.example.org", typeA, nil, a), qtype: typeA, err: errMismatch},
		4: {msg: pack(t, 7, name, typeAAAA, nil, a), qtype: typeA, err: errMismatch},
		5: {msg: pack(t, 7, name, typeA, func(m *dnsmessage.Message) { m.Questions = nil }, a), qtype: typeA, err: errMismatch},
		6: { // names compare case-insensitively; other owners, types and classes are ignored
			msg:   pack(t, 7, "HOST.Example.org", typeA, nil, chaos, dnstest.A("elsewhere.example.org", "192.0.2.2"), dnstest.AAAA(name, "2001:db8::1"), a),
			qtype: typeA, addrs: []string{"192.0.2.1"}, final: name,
		},
		7: { // a CNAME chain is followed in the answer section
			msg: pack(t, 7, name, typeAAAA, nil,
				dnstest.AAAA("c.example.org", "2001:db8::c"),
				dnstest.CNAME(name, "b.example.org"),
				dnstest.CNAME("b.example.org", "c.example.org")),
			qtype: typeAAAA, addrs: []string{"2001:db8::c"}, final: "c.example.org",
		},
		8: { // a CNAME without its target's records
			msg:   pack(t, 7, name, typeA, nil, dnstest.CNAME(name, "far.example.net")),
			qtype: typeA, final: "far.example.net",
		},
		9: {
			msg:   pack(t, 7, "_xmpp-server._tcp.example.org", typeSRV, nil, dnstest.SRV("_xmpp-server._tcp.example.org", 1, 2, 3, "XMPP.Example.org")),
			qtype: typeSRV, srvs: []srvRecord{{priority: 1, weight: 2, port: 3, target: "xmpp.example.org"}}, final: "_xmpp-server._tcp.example.org",
		},
		10: {
			msg:   pack(t, 7, "_xmpp-server._tcp.example.org", typeSRV, nil, dnstest.SRV("_xmpp-server._tcp.example.org", 0, 0, 0, ".")),
			qtype: typeSRV, srvs: []srvRecord{{target: "."}}, final: "_xmpp-server._tcp.example.org",
		},
		11: {msg: pack(t, 7, name, typeA, func(m *dnsmessage.Message) { m.Header.Truncated = true }, a), qtype: typeA, trunc: true, final: name},
		12: {msg: pack(t, 7, name, typeA, nil, a)[:20], qtype: typeA, bad: true},
		13: {msg: nil, qtype: typeA, bad: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			q := name
			if tc.qtype == typeSRV {
				q = "_xmpp-server._tcp.example.org"
			}
			resp, err := parseResponse(tc.msg, 7, q, tc.qtype)
			switch {
			case tc.bad:
				if err == nil || errors.Is(err, errMismatch) {
					t.Fatalf("got %v, want a malformed-message error", err)
				}
				return
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			var addrs []string
			for _, a := range resp.addrs {
				addrs = append(addrs, a.String())
			}
			if !slices.Equal(addrs, tc.addrs) || !slices.Equal(resp.srvs, tc.srvs) ||
				resp.name != tc.final || resp.truncated != tc.trunc {
				t.Errorf("got addrs %v srvs %v name %q truncated %v", addrs, resp.srvs, resp.name, resp.truncated)
			}
		})
	}
}

// FuzzParseResponse feeds arbitrary replies to the answer parser. Whatever
// comes over the network, it must not panic, and what it accepts must be
// of the type asked.
func FuzzParseResponse(f *testing.F) {
	const name = "host.example.org"
	f.Add(pack(f, 7, name, typeA, nil, dnstest.A(name, "192.0.2.1"), dnstest.CNAME(name, "x.example")), uint8(0))
	f.Add(pack(f, 7, name, typeAAAA, nil, dnstest.AAAA(name, "2001:db8::1")), uint8(1))
	f.Add(pack(f, 7, name, typeSRV, nil, dnstest.SRV(name, 1, 2, 3, "t.example"), dnstest.SRV(name, 0, 0, 0, ".")), uint8(2))
	f.Add(pack(f, 7, name, typeA, nil, dnstest.CNAME(name, "a.example"), dnstest.CNAME("a.example", name)), uint8(0))
	f.Fuzz(func(t *testing.T, msg []byte, which uint8) {
		qtype := []dnsmessage.Type{typeA, typeAAAA, typeSRV}[which%3]
		resp, err := parseResponse(msg, 7, name, qtype)
		if err != nil {
			return
		}
		for _, a := range resp.addrs {
			if (qtype == typeA) != a.Is4() {
				t.Errorf("%v answer holds %v", qtype, a)
			}
		}
		if qtype != typeSRV && len(resp.srvs) > 0 || qtype == typeSRV && len(resp.addrs) > 0 {
			t.Errorf("%v answer holds records of another type", qtype)
		}
		if resp.name != strings.ToLower(resp.name) || strings.HasSuffix(resp.name, ".") {
			t.Errorf("final name %q not canonical", resp.name)
		}
	})
}

// FuzzParseResolvConf checks that any file gives only nameservers the
// client can dial.
func FuzzParseResolvConf(f *testing.F) {
	seed, err := os.ReadFile("testdata/resolv.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("nameserver ::1\nnameserver 127.0.0.1 # x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		servers, err := parseResolvConf(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, s := range servers {
			if _, err := netip.ParseAddrPort(s); err != nil {
				t.Errorf("nameserver %q: %v", s, err)
			}
		}
	})
}
