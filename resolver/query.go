package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// ednsSize is the UDP payload size advertised with EDNS(0): the DNS flag day
// 2020 value, which avoids IP fragmentation on nearly every path.
const ednsSize = 1232

// client is a stub resolver that sends recursive queries to a fixed list of
// nameservers. It exists, instead of net.Resolver, so that dns.timeout bounds
// exactly one attempt and dns.retries counts exactly the attempts, and so that
// SERVFAIL is told apart from NXDOMAIN.
type client struct {
	servers  []string // "ip:port"
	timeout  time.Duration
	attempts int
	dialer   net.Dialer
}

// lookup asks for the records of qtype at name (an A-label without the
// trailing dot), following CNAMEs. NXDOMAIN is reported as a *DNSError
// wrapping ErrNotFound; NODATA as an empty response.
func (c *client) lookup(ctx context.Context, name string, qtype dnsmessage.Type) (*response, error) {
	seen := map[string]bool{name: true}
	for range maxCNAME {
		resp, err := c.query(ctx, name, qtype)
		if err != nil {
			return nil, err
		}
		if len(resp.addrs) > 0 || len(resp.srvs) > 0 || resp.name == name {
			return resp, nil
		}
		// The reply gave an alias but not its records (the recursive
		// server did not chase it, or it points out of its zone): ask
		// for the alias' target ourselves.
		if seen[resp.name] {
			break
		}
		seen[resp.name] = true
		name = resp.name
	}
	return nil, &DNSError{Name: name, Type: typeName(qtype), Server: c.servers[0], Attempts: 1,
		Err: fmt.Errorf("%w: CNAME loop or chain too long", ErrNoService)}
}

// query runs the attempts of one question, rotating over the nameservers.
func (c *client) query(ctx context.Context, name string, qtype dnsmessage.Type) (*response, error) {
	fail := func(server string, attempts int, err error) error {
		return &DNSError{Name: name, Type: typeName(qtype), Server: server, Attempts: attempts, Err: err}
	}
	var last error
	var server string
	for i := range c.attempts {
		server = c.servers[i%len(c.servers)]
		resp, err := c.exchange(ctx, server, name, qtype)
		if ctx.Err() != nil {
			return nil, fail(server, i+1, ctx.Err())
		}
		switch {
		case err != nil:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = ErrTimeout
			}
			last = err
		case resp.rcode == dnsmessage.RCodeSuccess:
			return resp, nil
		case resp.rcode == dnsmessage.RCodeNameError:
			return nil, fail(server, i+1, ErrNotFound)
		case resp.rcode == dnsmessage.RCodeServerFailure, resp.rcode == dnsmessage.RCodeRefused:
			// The next attempt may reach a recursive server that has
			// recovered, or another nameserver.
			last = ErrServerFailure
		default:
			return nil, fail(server, i+1, fmt.Errorf("resolver: DNS server answered %v", resp.rcode))
		}
	}
	return nil, fail(server, c.attempts, last)
}

// exchange is one attempt: a UDP query, repeated over TCP when the answer
// is truncated, both within one c.timeout.
func (c *client) exchange(ctx context.Context, server, name string, qtype dnsmessage.Type) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	// The ID is the only protection a UDP stub has against blind
	// spoofing, with the random source port the kernel picks.
	id := uint16(rand.Uint32())
	query, err := buildQuery(id, name, qtype)
	if err != nil {
		return nil, err
	}
	resp, err := c.exchangeUDP(ctx, server, id, query, name, qtype)
	if err != nil || !resp.truncated {
		return resp, err
	}
	return c.exchangeTCP(ctx, server, id, query, name, qtype)
}

func buildQuery(id uint16, name string, qtype dnsmessage.Type) ([]byte, error) {
	qname, err := dnsmessage.NewName(name + ".")
	if err != nil {
		return nil, fmt.Errorf("resolver: cannot query %q: %w", name, err)
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: qname, Type: qtype, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	if err := b.StartAdditionals(); err != nil {
		return nil, err
	}
	var opt dnsmessage.ResourceHeader
	if err := opt.SetEDNS0(ednsSize, dnsmessage.RCodeSuccess, false); err != nil {
		return nil, err
	}
	if err := b.OPTResource(opt, dnsmessage.OPTResource{}); err != nil {
		return nil, err
	}
	return b.Finish()
}

// typeName is the record type as people write it: "SRV", not "TypeSRV".
func typeName(t dnsmessage.Type) string { return strings.TrimPrefix(t.String(), "Type") }

// connect dials server and makes the connection honour ctx: its deadline,
// and cancellation, which interrupts a blocked read.
func (c *client) connect(ctx context.Context, network, server string) (net.Conn, func(), error) {
	conn, err := c.dialer.DialContext(ctx, network, server)
	if err != nil {
		return nil, nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return conn, func() { stop(); conn.Close() }, nil
}

func (c *client) exchangeUDP(ctx context.Context, server string, id uint16, query []byte, name string, qtype dnsmessage.Type) (*response, error) {
	conn, done, err := c.connect(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := conn.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		resp, err := parseResponse(buf[:n], id, name, qtype)
		if err != nil {
			// Not our reply, or garbage: keep waiting for the real
			// one until the attempt's deadline.
			continue
		}
		return resp, nil
	}
}

func (c *client) exchangeTCP(ctx context.Context, server string, id uint16, query []byte, name string, qtype dnsmessage.Type) (*response, error) {
	conn, done, err := c.connect(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer done()
	framed := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(query)), uint16(len(query)))
	if _, err := conn.Write(append(framed, query...)); err != nil {
		return nil, err
	}
	var size [2]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(size[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	// Over TCP nobody else can inject a reply, so a mismatch is an error
	// of the server, not noise to skip.
	resp, err := parseResponse(buf, id, name, qtype)
	if err != nil {
		return nil, err
	}
	if resp.truncated {
		return nil, errors.New("resolver: DNS reply truncated over TCP")
	}
	return resp, nil
}
