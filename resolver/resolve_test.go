package resolver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/internal/dnstest"
)

const (
	xmpps = "_xmpps-server._tcp."
	xmpp  = "_xmpp-server._tcp."
)

var (
	typeA    = dnsmessage.TypeA
	typeAAAA = dnsmessage.TypeAAAA
	typeSRV  = dnsmessage.TypeSRV
)

func newServer(t *testing.T) *dnstest.Server {
	t.Helper()
	srv, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// newDNS returns a resolver asking only srv. The timeout is generous, for a
// noisy machine, unless the test lowers it to exercise timeouts.
func newDNS(t *testing.T, srv *dnstest.Server, c Config) *DNS {
	t.Helper()
	c.Nameservers = []string{srv.Addr()}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func set(srv *dnstest.Server, name string, typ dnsmessage.Type, rr ...dnsmessage.Resource) {
	srv.Set(name, typ, dnstest.Entry{Answers: rr})
}

func target(host, addr string, direct bool) Target {
	return Target{Host: host, Addr: netip.MustParseAddrPort(addr), Direct: direct}
}

func TestResolve(t *testing.T) {
	// A zone shared by the cases: example.org has both services, and its
	// SRV hosts have addresses of both families.
	for i, tc := range []struct {
		name   string
		cfg    Config
		zone   func(srv *dnstest.Server)
		domain string
		want   []Target
		// unasked lists (name, type) pairs that must never reach DNS.
		unasked []string
	}{
		0: { // An override needs no DNS and takes outgoing.port.
			name:    "override",
			cfg:     Config{Overrides: map[string]Override{"Example.ORG.": {Addr: netip.MustParseAddr("192.0.2.1")}}, Port: 5270},
			zone:    func(*dnstest.Server) {},
			domain:  "example.org",
			want:    []Target{target("example.org", "192.0.2.1:5270", false)},
			unasked: []string{xmpp + "example.org", xmpps + "example.org", "example.org"},
		},
		1: { // An override with its own port.
			name:   "override port",
			cfg:    Config{Overrides: map[string]Override{"example.org": {Addr: netip.MustParseAddr("2001:db8::1"), Port: 5271}}},
			zone:   func(*dnstest.Server) {},
			domain: "EXAMPLE.org",
			want:   []Target{target("example.org", "[2001:db8::1]:5271", false)},
		},
		2: { // xmpps and xmpp records form one list ordered by priority.
			name: "srv merge",
			zone: func(srv *dnstest.Server) {
				set(srv, xmpps+"example.org", typeSRV, dnstest.SRV(xmpps+"example.org", 10, 0, 5223, "tls.example.org"))
				set(srv, xmpp+"example.org", typeSRV,
					dnstest.SRV(xmpp+"example.org", 20, 0, 5270, "backup.example.org"),
					dnstest.SRV(xmpp+"example.org", 5, 0, 5269, "main.example.org"))
				set(srv, "tls.example.org", typeA, dnstest.A("tls.example.org", "192.0.2.10"))
				set(srv, "main.example.org", typeA, dnstest.A("main.example.org", "192.0.2.20"), dnstest.A("main.example.org", "192.0.2.21"))
				set(srv, "main.example.org", typeAAAA, dnstest.AAAA("main.example.org", "2001:db8::20"))
				set(srv, "backup.example.org", typeAAAA, dnstest.AAAA("backup.example.org", "2001:db8::30"))
			},
			domain: "example.org",
			want: []Target{
				target("main.example.org", "192.0.2.20:5269", false),
				target("main.example.org", "192.0.2.21:5269", false),
				target("main.example.org", "[2001:db8::20]:5269", false),
				target("tls.example.org", "192.0.2.10:5223", true),
				target("backup.example.org", "[2001:db8::30]:5270", false),
			},
		},
		3: { // ip_versions [6, 4]: AAAA addresses first for every host.
			name: "ip_versions 6 4",
			cfg:  Config{IPVersions: []int{6, 4}},
			zone: func(srv *dnstest.Server) {
				set(srv, xmpp+"example.org", typeSRV, dnstest.SRV(xmpp+"example.org", 0, 0, 5269, "main.example.org"))
				set(srv, "main.example.org", typeA, dnstest.A("main.example.org", "192.0.2.20"))
				set(srv, "main.example.org", typeAAAA, dnstest.AAAA("main.example.org", "2001:db8::20"), dnstest.AAAA("main.example.org", "2001:db8::21"))
			},
			domain: "example.org",
			want: []Target{
				target("main.example.org", "[2001:db8::20]:5269", false),
				target("main.example.org", "[2001:db8::21]:5269", false),
				target("main.example.org", "192.0.2.20:5269", false),
			},
		},
		4: { // ip_versions [6]: A is never asked.
			name: "ip_versions 6",
			cfg:  Config{IPVersions: []int{6}},
			zone: func(srv *dnstest.Server) {
				set(srv, "example.org", typeA, dnstest.A("example.org", "192.0.2.1"))
				set(srv, "example.org", typeAAAA, dnstest.AAAA("example.org", "2001:db8::1"))
			},
			domain:  "example.org",
			want:    []Target{target("example.org", "[2001:db8::1]:5269", false)},
			unasked: []string{"A example.org"},
		},
		5: { // No SRV names at all (NXDOMAIN): the domain's addresses on outgoing.port.
			name: "nxdomain fallback",
			cfg:  Config{Port: 5270},
			zone: func(srv *dnstest.Server) {
				set(srv, "example.org", typeA, dnstest.A("example.org", "192.0.2.1"))
				set(srv, "example.org", typeAAAA, dnstest.AAAA("example.org", "2001:db8::1"))
			},
			domain: "example.org",
			want: []Target{
				target("example.org", "192.0.2.1:5270", false),
				target("example.org", "[2001:db8::1]:5270", false),
			},
		},
		6: { // SRV names that exist without SRV records (NODATA) fall back too.
			name: "nodata fallback",
			zone: func(srv *dnstest.Server) {
				set(srv, xmpp+"example.org", typeA, dnstest.A(xmpp+"example.org", "192.0.2.99"))
				set(srv, "example.org", typeA, dnstest.A("example.org", "192.0.2.1"))
			},
			domain: "example.org",
			want:   []Target{target("example.org", "192.0.2.1:5269", false)},
		},
		7: { // A "." for one service does not hide the other one.
			name: "dot and other service",
			zone: func(srv *dnstest.Server) {
				set(srv, xmpp+"example.org", typeSRV, dnstest.SRV(xmpp+"example.org", 0, 0, 0, "."))
				set(srv, xmpps+"example.org", typeSRV, dnstest.SRV(xmpps+"example.org", 0, 0, 5223, "tls.example.org"))
				set(srv, "tls.example.org", typeA, dnstest.A("tls.example.org", "192.0.2.10"))
			},
			domain: "example.org",
			want:   []Target{target("tls.example.org", "192.0.2.10:5223", true)},
		},
		8: { // IDNs are asked as A-labels.
			name: "idn",
			zone: func(srv *dnstest.Server) {
				set(srv, xmpp+"xn--bcher-kva.example", typeSRV, dnstest.SRV(xmpp+"xn--bcher-kva.example", 0, 0, 5269, "xmpp.xn--bcher-kva.example"))
				set(srv, "xmpp.xn--bcher-kva.example", typeA, dnstest.A("xmpp.xn--bcher-kva.example", "192.0.2.7"))
			},
			domain: "Bücher.example",
			want:   []Target{target("xmpp.xn--bcher-kva.example", "192.0.2.7:5269", false)},
		},
		9: { // CNAMEs: one answered with its target, one the client chases.
			name: "cname",
			zone: func(srv *dnstest.Server) {
				set(srv, xmpp+"example.org", typeSRV,
					dnstest.SRV(xmpp+"example.org", 0, 0, 5269, "alias.example.org"),
					dnstest.SRV(xmpp+"example.org", 1, 0, 5269, "other.example.org"))
				set(srv, "alias.example.org", typeA,
					dnstest.CNAME("alias.example.org", "real.example.org"),
					dnstest.A("real.example.org", "192.0.2.8"),
					dnstest.A("unrelated.example.org", "192.0.2.66"))
				set(srv, "other.example.org", typeA, dnstest.CNAME("other.example.org", "far.example.net"))
				set(srv, "far.example.net", typeA, dnstest.A("far.example.net", "192.0.2.9"))
			},
			domain: "example.org",
			want: []Target{
				target("alias.example.org", "192.0.2.8:5269", false),
				target("other.example.org", "192.0.2.9:5269", false),
			},
		},
		10: { // One SRV host without addresses is skipped.
			name: "dead srv host",
			zone: func(srv *dnstest.Server) {
				set(srv, xmpp+"example.org", typeSRV,
					dnstest.SRV(xmpp+"example.org", 0, 0, 5269, "gone.example.org"),
					dnstest.SRV(xmpp+"example.org", 1, 0, 5269, "main.example.org"))
				set(srv, "main.example.org", typeA, dnstest.A("main.example.org", "192.0.2.20"))
			},
			domain: "example.org",
			want:   []Target{target("main.example.org", "192.0.2.20:5269", false)},
		},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			srv := newServer(t)
			tc.zone(srv)
			r := newDNS(t, srv, tc.cfg)
			got, err := r.Resolve(t.Context(), tc.domain)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s:\n got %v\nwant %v", tc.name, got, tc.want)
			}
			for _, n := range tc.unasked {
				for _, typ := range []dnsmessage.Type{typeA, typeAAAA, typeSRV} {
					name := n
					if len(n) > 2 && n[:2] == "A " {
						if typ != typeA {
							continue
						}
						name = n[2:]
					}
					if c := srv.Count(name, typ); c != 0 {
						t.Errorf("%s: %v %s asked %d times", tc.name, typ, name, c)
					}
				}
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	for i, tc := range []struct {
		name     string
		cfg      Config
		zone     func(srv *dnstest.Server)
		domain   string
		is       []error
		isNot    []error
		attempts int // of the *DNSError found in the chain; 0: not checked
		check    func(t *testing.T, srv *dnstest.Server)
	}{
		0: { // Nothing at all: no such domain.
			name:     "nxdomain",
			zone:     func(*dnstest.Server) {},
			domain:   "nowhere.example",
			is:       []error{ErrNotFound},
			isNot:    []error{ErrNoService, ErrTimeout},
			attempts: 1,
		},
		1: { // A lone "." target: decidedly no service, and no A/AAAA fallback.
			name: "dot target",
			zone: func(srv *dnstest.Server) {
				set(srv, xmpp+"example.org", typeSRV, dnstest.SRV(xmpp+"example.org", 0, 0, 0, "."))
				set(srv, "example.org", typeA, dnstest.A("example.org", "192.0.2.1"))
			},
			domain: "example.org",
			is:     []error{ErrNoService},
			isNot:  []error{ErrNotFound},
			check: func(t *testing.T, srv *dnstest.Server) {
				if c := srv.Count("example.org", typeA); c != 0 {
					t.Errorf("fell back to A after a \".\" target (%d queries)", c)
				}
			},
		},
		2: { // Every attempt dropped: timed out after exactly Retries attempts.
			name: "retries exhausted",
			cfg:  Config{Timeout: 100 * time.Millisecond, Retries: 3},
			zone: func(srv *dnstest.Server) {
				srv.Set(xmpp+"example.org", typeSRV, dnstest.Entry{Faults: []dnstest.Fault{dnstest.Drop, dnstest.Drop, dnstest.Drop, dnstest.Drop}})
			},
			domain:   "example.org",
			is:       []error{ErrTimeout},
			isNot:    []error{ErrNotFound},
			attempts: 3,
			check: func(t *testing.T, srv *dnstest.Server) {
				if c := srv.Count(xmpp+"example.org", typeSRV); c != 3 {
					t.Errorf("%d attempts reached the server, want 3", c)
				}
				if c := srv.Count("example.org", typeA); c != 0 {
					t.Errorf("fell back to A while SRV was unknown (%d queries)", c)
				}
			},
		},
		3: { // A reply later than the timeout is a timeout too.
			name: "delayed beyond timeout",
			cfg:  Config{Timeout: 50 * time.Millisecond, Retries: 2},
			zone: func(srv *dnstest.Server) {
				srv.Set(xmpp+"example.org", typeSRV, dnstest.Entry{Delay: time.Minute})
			},
			domain:   "example.org",
			is:       []error{ErrTimeout},
			attempts: 2,
		},
		4: { // SERVFAIL on every attempt.
			name: "servfail exhausted",
			cfg:  Config{Retries: 2},
			zone: func(srv *dnstest.Server) {
				srv.Set(xmpps+"example.org", typeSRV, dnstest.Entry{Faults: []dnstest.Fault{dnstest.ServFail, dnstest.ServFail}})
			},
			domain:   "example.org",
			is:       []error{ErrServerFailure},
			isNot:    []error{ErrTimeout, ErrNotFound},
			attempts: 2,
		},
		5: { // NXDOMAIN is final: one attempt only, though Retries allows 3.
			name:   "nxdomain not retried",
			cfg:    Config{Retries: 3},
			zone:   func(*dnstest.Server) {},
			domain: "example.org",
			is:     []error{ErrNotFound},
			check: func(t *testing.T, srv *dnstest.Server) {
				for _, n := range []string{xmpp + "example.org", xmpps + "example.org"} {
					if c := srv.Count(n, typeSRV); c != 1 {
						t.Errorf("%s asked %d times, want 1", n, c)
					}
				}
			},
		},
		6: { // The domain exists but has no address: no service.
			name: "nodata everywhere",
			cfg:  Config{Retries: 3},
			zone: func(srv *dnstest.Server) {
				set(srv, "example.org", dnsmessage.TypeMX)
			},
			domain: "example.org",
			is:     []error{ErrNoService},
			isNot:  []error{ErrNotFound},
			check: func(t *testing.T, srv *dnstest.Server) {
				if c := srv.Count("example.org", typeA); c != 1 {
					t.Errorf("NODATA asked %d times, want 1", c)
				}
			},
		},
		7: { // SRV hosts without addresses: no service.
			name: "srv hosts unresolvable",
			zone: func(srv *dnstest.Server) {
				set(srv, xmpp+"example.org", typeSRV, dnstest.SRV(xmpp+"example.org", 0, 0, 5269, "gone.example.org"))
			},
			domain: "example.org",
			is:     []error{ErrNoService},
		},
		8: { // Not a domain name at all.
			name:   "invalid",
			zone:   func(*dnstest.Server) {},
			domain: "192.0.2.1",
			is:     []error{ErrNotFound},
		},
		9: { // A CNAME loop ends.
			name: "cname loop",
			zone: func(srv *dnstest.Server) {
				set(srv, "a.example.org", typeA, dnstest.CNAME("a.example.org", "b.example.org"))
				set(srv, "b.example.org", typeA, dnstest.CNAME("b.example.org", "a.example.org"))
				set(srv, "a.example.org", typeAAAA, dnstest.CNAME("a.example.org", "b.example.org"))
				set(srv, "b.example.org", typeAAAA, dnstest.CNAME("b.example.org", "a.example.org"))
			},
			domain: "a.example.org",
			is:     []error{ErrNoService},
		},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			srv := newServer(t)
			tc.zone(srv)
			r := newDNS(t, srv, tc.cfg)
			got, err := r.Resolve(t.Context(), tc.domain)
			if err == nil {
				t.Fatalf("%s: got %v, want an error", tc.name, got)
			}
			for _, want := range tc.is {
				if !errors.Is(err, want) {
					t.Errorf("%s: %v is not %v", tc.name, err, want)
				}
			}
			for _, not := range tc.isNot {
				if errors.Is(err, not) {
					t.Errorf("%s: %v is %v", tc.name, err, not)
				}
			}
			if tc.attempts != 0 {
				var de *DNSError
				if !errors.As(err, &de) {
					t.Fatalf("%s: %v has no *DNSError", tc.name, err)
				}
				if de.Attempts != tc.attempts {
					t.Errorf("%s: %d attempts, want %d", tc.name, de.Attempts, tc.attempts)
				}
			}
			if tc.check != nil {
				tc.check(t, srv)
			}
		})
	}
}

// TestQueryFaults checks one lookup against each kind of misbehaviour the
// client must survive.
func TestQueryFaults(t *testing.T) {
	answer := []dnsmessage.Resource{dnstest.A("host.example.org", "192.0.2.1")}
	many := make([]dnsmessage.Resource, 0, 100)
	var manyAddrs []netip.Addr
	for i := range 100 {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		many = append(many, dnstest.A("host.example.org", a.String()))
		manyAddrs = append(manyAddrs, a)
	}
	for i, tc := range []struct {
		name    string
		retries int
		timeout time.Duration
		entry   dnstest.Entry
		want    []netip.Addr
		queries int
	}{
		0: { // Timeout, then success on the retry.
			name:    "drop then answer",
			retries: 2,
			timeout: 500 * time.Millisecond,
			entry:   dnstest.Entry{Answers: answer, Faults: []dnstest.Fault{dnstest.Drop}},
			want:    []netip.Addr{netip.MustParseAddr("192.0.2.1")},
			queries: 2,
		},
		1: { // SERVFAIL is retried.
			name:    "servfail then answer",
			retries: 2,
			entry:   dnstest.Entry{Answers: answer, Faults: []dnstest.Fault{dnstest.ServFail}},
			want:    []netip.Addr{netip.MustParseAddr("192.0.2.1")},
			queries: 2,
		},
		2: { // Replies with another ID or question are ignored.
			name:    "spoofed replies ignored",
			retries: 1,
			entry:   dnstest.Entry{Answers: answer, Faults: []dnstest.Fault{dnstest.Spoof}},
			want:    []netip.Addr{netip.MustParseAddr("192.0.2.1")},
			queries: 1,
		},
		3: { // Truncated over UDP: the whole answer comes over TCP.
			name:    "truncated",
			retries: 1,
			entry:   dnstest.Entry{Answers: many, Truncate: true},
			want:    manyAddrs,
			queries: 2,
		},
		4: { // A slow answer within the timeout is waited for.
			name:    "delayed within timeout",
			retries: 1,
			entry:   dnstest.Entry{Answers: answer, Delay: 20 * time.Millisecond},
			want:    []netip.Addr{netip.MustParseAddr("192.0.2.1")},
			queries: 1,
		},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			srv := newServer(t)
			srv.Set("host.example.org", typeA, tc.entry)
			r := newDNS(t, srv, Config{Retries: tc.retries, Timeout: tc.timeout})
			resp, err := r.s.client.lookup(t.Context(), "host.example.org", typeA)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !slices.Equal(resp.addrs, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, resp.addrs, tc.want)
			}
			if c := srv.Count("host.example.org", typeA); c != tc.queries {
				t.Errorf("%s: %d queries, want %d", tc.name, c, tc.queries)
			}
		})
	}
}

// TestResolveWeights draws the order of two SRV records of one priority many
// times through DNS. With weights 1 and 3, RFC 2782's selection (a number
// in [0, 4], the first record whose running sum reaches it) puts the
// weight-1 record first 2 times in 5. The seed is fixed, so the count is
// reproducible; the bounds are 4 standard deviations wide so that a correct
// change of the drawing code does not break the test.
func TestResolveWeights(t *testing.T) {
	srv := newServer(t)
	set(srv, xmpp+"example.org", typeSRV,
		dnstest.SRV(xmpp+"example.org", 1, 1, 5269, "light.example.org"),
		dnstest.SRV(xmpp+"example.org", 1, 3, 5269, "heavy.example.org"))
	set(srv, "light.example.org", typeA, dnstest.A("light.example.org", "192.0.2.1"))
	set(srv, "heavy.example.org", typeA, dnstest.A("heavy.example.org", "192.0.2.3"))
	rng := rand.New(rand.NewPCG(1, 2))
	r := newDNS(t, srv, Config{Rand: rng.IntN})

	const draws = 1000
	light := 0
	for range draws {
		got, err := r.Resolve(t.Context(), "example.org")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("got %v, want 2 targets", got)
		}
		if got[0].Host == "light.example.org" {
			light++
		}
	}
	// mean 400, standard deviation sqrt(1000*0.4*0.6) ≈ 15.5
	if light < 338 || light > 462 {
		t.Errorf("weight 1 of 1+3 came first %d times in %d, want about 400", light, draws)
	}
}

// TestOrder checks the ordering rules on many more draws than DNS allows in
// a unit test: priorities strictly ordered, weights by RFC 2782's rule, and
// weight 0 chosen first only with its small chance.
func TestOrder(t *testing.T) {
	r := &DNS{s: settings{randN: rand.New(rand.NewPCG(3, 4)).IntN}}
	recs := []srvRecord{
		{priority: 2, weight: 0, target: "late"},
		{priority: 1, weight: 10, target: "a"},
		{priority: 1, weight: 30, target: "b"},
		{priority: 1, weight: 60, target: "c"},
		{priority: 1, weight: 0, target: "zero"},
	}
	const draws = 100000
	first := map[string]int{}
	for range draws {
		got := r.order(recs)
		if got[len(got)-1].target != "late" {
			t.Fatalf("priority 2 is not last: %v", got)
		}
		first[got[0].target]++
	}
	// Sum of weights 100: a number in [0, 100] picks zero for 0 (1/101), a
	// for 1..10, b for 11..40, c for 41..100.
	for name, p := range map[string]float64{"zero": 1.0 / 101, "a": 10.0 / 101, "b": 30.0 / 101, "c": 60.0 / 101} {
		got := float64(first[name]) / draws
		if got < p-0.01 || got > p+0.01 {
			t.Errorf("%s first in %.4f of draws, want %.4f", name, got, p)
		}
	}
}

// TestResolveContext checks that a cancelled context stops a lookup that
// would otherwise wait out its attempts.
func TestResolveContext(t *testing.T) {
	srv := newServer(t)
	srv.Set(xmpp+"example.org", typeSRV, dnstest.Entry{Faults: []dnstest.Fault{dnstest.Drop}})
	r := newDNS(t, srv, Config{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := r.Resolve(ctx, "example.org")
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestSRVTargetLookupsBounded: a domain's owner publishes a hundred SRV
// targets, each slow to resolve. Resolve looks them up a few at a time
// (maxTargetLookups, each with one query per address family) instead of
// sending every query at once, and still lists every target, in order.
func TestSRVTargetLookupsBounded(t *testing.T) {
	srv := newServer(t)
	const n = 100
	var records []dnsmessage.Resource
	for i := range n {
		host := fmt.Sprintf("h%d.example.org", i)
		records = append(records, dnstest.SRV(xmpp+"example.org", 0, 0, 5269, host))
		slow := func(rr ...dnsmessage.Resource) dnstest.Entry {
			return dnstest.Entry{Answers: rr, Delay: 5 * time.Millisecond}
		}
		srv.Set(host, dnsmessage.TypeA, slow(dnstest.A(host, fmt.Sprintf("192.0.2.%d", i+1))))
		srv.Set(host, dnsmessage.TypeAAAA, slow())
	}
	set(srv, xmpp+"example.org", typeSRV, records...)
	targets, err := newDNS(t, srv, Config{}).Resolve(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != n {
		t.Fatalf("%d targets, want %d", len(targets), n)
	}
	if got, limit := srv.MaxInFlight(), 2*maxTargetLookups; got > limit {
		t.Fatalf("%d queries in flight at once, want at most %d", got, limit)
	}
}
