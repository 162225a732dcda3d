package s2s

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/starttls"
)

// TestCertificateInCode: a host that gives its certificate in code
// (Config.Certificate) needs no certfile for any TLS mode, in New and
// Reload; without either, the error points at the use_starttls line of the
// file and says both ways to fix it.
func TestCertificateInCode(t *testing.T) {
	leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{"a.test"}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := config.Parse("s2s.toml", []byte("default_policy = \"allow\"\nuse_starttls = \"required_trusted\"\n"))
	if err != nil {
		t.Fatalf("Parse refuses a mode whose certificate the host may give: %v", err)
	}
	base := Config{
		S2S:     s,
		IsLocal: func(string) bool { return false },
		Deliver: func(Stanza) {},
		Bounce:  func(Bounce) {},
		Logger:  testLogger(t),
	}
	for i, tc := range []struct {
		cert starttls.CertSource
		err  string
	}{
		0: {cert: starttls.StaticCert(leaf.TLS)},
		1: {err: `s2s: bad configuration: s2s.toml:2:16: s2s.use_starttls: mode "required_trusted" needs a certificate (set s2s.certfile, give one in code with s2s.Config.Certificate, or use "false")`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c := base
			c.Certificate = tc.cert
			m, err := New(c)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || !errors.Is(err, ErrConfig) || !errors.Is(err, config.ErrCertFile) {
					t.Fatalf("New = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			r := s.Clone()
			r.UseStartTLS = "optional"
			if err := m.Reload(r); err != nil {
				t.Fatalf("Reload: %v", err)
			}
		})
	}
	// Reload on a Manager without a certificate refuses a TLS mode, and
	// changes nothing.
	c := base
	c.S2S = config.Default()
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Reload(s); err == nil || !strings.Contains(err.Error(), "needs a certificate") {
		t.Fatalf("Reload = %v", err)
	}
	if got := m.settings().s2s.UseStartTLS; got != "false" {
		t.Fatalf("mode after a refused Reload: %s", got)
	}
}
