package resolver

import (
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseResolvConf(t *testing.T) {
	f, err := os.Open("testdata/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseResolvConf(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.53:53", "[2001:db8::53]:53", "[fe80::1%eth0]:53", "198.51.100.53:53"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReadResolvConf(t *testing.T) {
	for i, tc := range []struct {
		path string
		want []string
	}{
		0: {"testdata/resolv.conf", []string{"192.0.2.53:53", "[2001:db8::53]:53", "[fe80::1%eth0]:53", "198.51.100.53:53"}},
		1: {"testdata/empty.conf", defaultNameservers},
		2: {"testdata/missing.conf", defaultNameservers},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := readResolvConf(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: got %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	s, err := Config{}.settings("testdata/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if s.port != 5269 || !slices.Equal(s.families, []int{4, 6}) ||
		s.client.timeout != 10*time.Second || s.client.attempts != 2 {
		t.Errorf("defaults: port %d, families %v, timeout %v, attempts %d",
			s.port, s.families, s.client.timeout, s.client.attempts)
	}
	if s.client.servers[0] != "192.0.2.53:53" {
		t.Errorf("nameservers %q, want those of testdata/resolv.conf", s.client.servers)
	}

	s, err = Config{
		Nameservers: []string{"192.0.2.1", "[2001:db8::1]:5353"},
		Overrides:   map[string]Override{"Bücher.Example.": {Addr: netip.MustParseAddr("::ffff:192.0.2.9")}},
		Port:        5270,
	}.settings("testdata/missing.conf")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.1:53", "[2001:db8::1]:5353"}; !slices.Equal(s.client.servers, want) {
		t.Errorf("nameservers %q, want %q", s.client.servers, want)
	}
	if got := s.overrides["xn--bcher-kva.example"]; got != netip.MustParseAddrPort("192.0.2.9:5270") {
		t.Errorf("override %v, want 192.0.2.9:5270 under the A-label", got)
	}
}

func TestConfigInvalid(t *testing.T) {
	for i, tc := range []struct {
		cfg  Config
		want string
	}{
		0: {Config{Port: 70000}, "port 70000 out of range"},
		1: {Config{IPVersions: []int{4, 5}}, "5 is not 4 or 6"},
		2: {Config{IPVersions: []int{6, 6}}, "6 listed twice"},
		3: {Config{IPVersions: []int{}}, "ip_versions is empty"},
		4: {Config{Timeout: -time.Second}, "negative DNS timeout"},
		5: {Config{Retries: -1}, "negative DNS retries"},
		6: {Config{Nameservers: []string{"dns.example"}}, `nameserver "dns.example"`},
		7: {Config{Overrides: map[string]Override{"a..b": {Addr: netip.MustParseAddr("192.0.2.1")}}}, "address override"},
		8: {Config{Overrides: map[string]Override{"a.example": {}}}, "has no IP address"},
		9: {Config{Overrides: map[string]Override{"a.example": {Addr: netip.MustParseAddr("192.0.2.1"), Port: -1}}}, "port -1 out of range"},
		10: {Config{Overrides: map[string]Override{
			"a.example":  {Addr: netip.MustParseAddr("192.0.2.1")},
			"A.example.": {Addr: netip.MustParseAddr("192.0.2.2")},
		}}, "two address overrides for a.example"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil {
				t.Fatalf("New accepted %+v", tc.cfg)
			}
			if !strings.HasPrefix(err.Error(), "resolver: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}
