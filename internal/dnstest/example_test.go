package dnstest_test

import (
	"fmt"
	"net"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/internal/dnstest"
)

// query asks srv one question over UDP and returns the reply's rcode and
// answer count.
func query(srv *dnstest.Server, name string, typ dnsmessage.Type) (dnsmessage.RCode, int) {
	conn, err := net.Dial("udp", srv.Addr())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 1, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}},
	}
	b, err := q.Pack()
	if err != nil {
		panic(err)
	}
	if _, err := conn.Write(b); err != nil {
		panic(err)
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		panic(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		panic(err)
	}
	return m.Header.RCode, len(m.Answers)
}

func Example() {
	srv, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.Set("xmpp.example.org", dnsmessage.TypeA, dnstest.Entry{
		Answers: []dnsmessage.Resource{dnstest.A("xmpp.example.org", "192.0.2.1")},
		Faults:  []dnstest.Fault{dnstest.ServFail},
	})

	fmt.Println(query(srv, "xmpp.example.org.", dnsmessage.TypeA))    // the fault
	fmt.Println(query(srv, "xmpp.example.org.", dnsmessage.TypeA))    // the entry
	fmt.Println(query(srv, "xmpp.example.org.", dnsmessage.TypeAAAA)) // NODATA
	fmt.Println(query(srv, "nowhere.example.", dnsmessage.TypeA))     // NXDOMAIN
	fmt.Println(srv.Count("xmpp.example.org", dnsmessage.TypeA))
	// Output:
	// RCodeServerFailure 0
	// RCodeSuccess 1
	// RCodeSuccess 0
	// RCodeNameError 0
	// 2
}
