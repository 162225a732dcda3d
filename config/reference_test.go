package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// TestReferenceExamples loads each example of MongooseIM's option reference,
// kept verbatim in testdata/examples, and compares it with the value the
// reference documents for it.
func TestReferenceExamples(t *testing.T) {
	dir := filepath.Join("testdata", "examples")
	cert := filepath.Join(dir, "cert.pem")
	for i, tc := range []struct {
		file  string
		want  func(c *S2S)
		err   string
		check string // CheckCertFile's error
	}{
		{file: "default_policy.toml", want: func(c *S2S) { c.DefaultPolicy = "deny" }},
		{file: "host_policy.toml", want: func(c *S2S) {
			c.HostPolicy = []HostPolicy{{"good.xmpp.org", "allow"}, {"bad.xmpp.org", "deny"}}
		}},
		// The reference's example alone lacks the certfile it says is
		// required: it loads (the host may give a certificate in code), and
		// CheckCertFile points at the mode.
		{file: "use_starttls.toml", want: func(c *S2S) { c.UseStartTLS = "required" },
			check: dir + `/use_starttls.toml:1:16: s2s.use_starttls: mode "required" needs a certificate (set s2s.certfile, give one in code with s2s.Config.Certificate, or use "false")`},
		{file: "certfile.toml", want: func(c *S2S) { c.CertFile = cert }},
		{file: "shared.toml", want: func(c *S2S) { c.Shared = "82gc8b23ct7824" }},
		{file: "address.toml", want: func(c *S2S) {
			c.Address = []Address{
				{Host: "my.xmpp.org", IP: netip.MustParseAddr("192.0.100.1")},
				{Host: "your.xmpp.org", IP: netip.MustParseAddr("192.0.1.100"), Port: 5271},
			}
		}},
		{file: "ciphers.toml", want: func(c *S2S) { c.Ciphers = "TLSv1.2" }},
		{file: "max_retry_delay.toml", want: func(c *S2S) { c.MaxRetryDelay = 300 * time.Second }},
		{file: "outgoing.port.toml", want: func(c *S2S) { c.Outgoing.Port = 5270 }},
		{file: "outgoing.ip_versions.toml", want: func(c *S2S) { c.Outgoing.IPVersions = []int{6} }},
		{file: "outgoing.connection_timeout.toml", want: func(c *S2S) { c.Outgoing.ConnectionTimeout = 5 * time.Second }},
		{file: "dns.timeout.toml", want: func(c *S2S) { c.DNS.Timeout = 30 * time.Second }},
		{file: "dns.retries.toml", want: func(c *S2S) { c.DNS.Retries = 1 }},
		{file: "reference.toml", want: func(c *S2S) {
			c.DefaultPolicy = "deny"
			c.HostPolicy = []HostPolicy{{"good.xmpp.org", "allow"}, {"bad.xmpp.org", "deny"}}
			c.UseStartTLS = "required"
			c.CertFile = cert
			c.Shared = "82gc8b23ct7824"
			c.Address = []Address{
				{Host: "my.xmpp.org", IP: netip.MustParseAddr("192.0.100.1")},
				{Host: "your.xmpp.org", IP: netip.MustParseAddr("192.0.1.100"), Port: 5271},
			}
			c.Ciphers = "TLSv1.2"
			c.MaxRetryDelay = 300 * time.Second
			c.Outgoing = Outgoing{Port: 5270, IPVersions: []int{6}, ConnectionTimeout: 5 * time.Second}
			c.DNS = DNS{Timeout: 30 * time.Second, Retries: 1}
		}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := Load(filepath.Join(dir, tc.file))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Load(%s) error = %v, want %s", tc.file, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%s): %v", tc.file, err)
			}
			if err := got.CheckCertFile(); tc.check == "" && err != nil || tc.check != "" && (err == nil || err.Error() != tc.check) {
				t.Errorf("CheckCertFile() = %v, want %q", err, tc.check)
			}
			want := Default()
			want.Shared, want.generated = got.Shared, got.generated // random unless the example sets it
			want.modeAt = got.modeAt                                // where use_starttls was, if anywhere
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Load(%s) =\n%+v\nwant\n%+v", tc.file, got, want)
			}
		})
	}
}

// TestDefault pins every default to the reference's.
func TestDefault(t *testing.T) {
	c := Default()
	want := S2S{
		DefaultPolicy: "allow",
		UseStartTLS:   "false",
		Shared:        c.Shared,
		generated:     c.generated,
		Ciphers:       "TLSv1.2:TLSv1.3",
		MaxRetryDelay: 300 * time.Second,
		Outgoing:      Outgoing{Port: 5269, IPVersions: []int{4, 6}, ConnectionTimeout: 10 * time.Second},
		DNS:           DNS{Timeout: 10 * time.Second, Retries: 2},
		MaxStanzaSize: 1 << 20,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	for _, src := range []string{"", "[s2s]\n", "[general]\nhosts = [\"localhost\"]\n[s2s]\n"} {
		p, err := Parse("s2s.toml", []byte(src))
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		want.Shared, want.generated = p.Shared, p.generated
		if !reflect.DeepEqual(p, want) {
			t.Fatalf("Parse(%q) =\n%+v\nwant the defaults\n%+v", src, p, want)
		}
	}
}

// TestSharedDefault checks the generated secret: 10 random bytes in hex,
// a new one on every load.
func TestSharedDefault(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 8; i++ {
		c, err := Parse("s2s.toml", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Shared) != 20 {
			t.Fatalf("Shared has %d characters, want 20", len(c.Shared))
		}
		for _, r := range c.Shared {
			if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
				t.Fatalf("Shared = %q, want lower-case hex", string(c.Shared))
			}
		}
		if seen[string(c.Shared)] {
			t.Fatalf("Shared %q generated twice", string(c.Shared))
		}
		seen[string(c.Shared)] = true
	}
}

// TestSharedGenerated checks that a drawn secret is told apart from one a
// document or a caller set.
func TestSharedGenerated(t *testing.T) {
	set, err := Parse("s2s.toml", []byte(`shared = "s3cret"`))
	if err != nil {
		t.Fatal(err)
	}
	absent, err := Parse("s2s.toml", []byte(`default_policy = "deny"`))
	if err != nil {
		t.Fatal(err)
	}
	byCaller := Default()
	byCaller.Shared = "mine"
	for i, tc := range []struct {
		c    S2S
		want bool
	}{
		0: {c: Default(), want: true},
		1: {c: absent, want: true},
		2: {c: absent.Clone(), want: true},
		3: {c: set, want: false},
		4: {c: byCaller, want: false},
		5: {c: S2S{Shared: "hand-built"}, want: false},
		6: {c: S2S{}, want: false},
	} {
		if got := tc.c.SharedGenerated(); got != tc.want {
			t.Errorf("%d: SharedGenerated() = %v, want %v", i, got, tc.want)
		}
	}
}
