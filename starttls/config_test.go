package starttls

import (
	"crypto/tls"
	"encoding/xml"
	"errors"
	"strconv"
	"testing"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/testcert"
)

func TestOfferAndFeature(t *testing.T) {
	for i, tc := range []struct {
		mode            Mode
		offer, required bool
		feature         string
	}{
		{mode: False},
		{mode: Optional, offer: true, feature: featureOptional},
		{mode: Required, offer: true, required: true, feature: featureRequired},
		{mode: RequiredTrusted, offer: true, required: true, feature: featureRequired},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c := &Config{Mode: tc.mode}
			offer, required := c.Offer()
			if offer != tc.offer || required != tc.required || string(c.Feature()) != tc.feature {
				t.Fatalf("Offer = %v, %v; Feature = %q", offer, required, c.Feature())
			}
		})
	}
}

func TestOutgoing(t *testing.T) {
	for i, tc := range []struct {
		mode              Mode
		offered, required bool
		start             bool
		err               error
	}{
		{mode: False},
		{mode: False, offered: true},
		{mode: False, offered: true, required: true, err: ErrPeerRequires},
		{mode: Optional},
		{mode: Optional, offered: true, start: true},
		{mode: Optional, offered: true, required: true, start: true},
		{mode: Required, err: ErrNotOffered},
		{mode: Required, offered: true, start: true},
		{mode: RequiredTrusted, err: ErrNotOffered},
		{mode: RequiredTrusted, offered: true, required: true, start: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			start, err := (&Config{Mode: tc.mode}).Outgoing(tc.offered, tc.required)
			if start != tc.start || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Outgoing(%v, %v) = %v, %v; want %v, %v", tc.offered, tc.required, start, err, tc.start, tc.err)
			}
		})
	}
}

func TestIncoming(t *testing.T) {
	starttls := xml.Name{Space: NS, Local: "starttls"}
	result := xml.Name{Space: "jabber:server:dialback", Local: "result"}
	message := xml.Name{Space: "jabber:server", Local: "message"}
	wrongNS := xml.Name{Space: "jabber:server", Local: "starttls"}
	for i, tc := range []struct {
		mode  Mode
		el    xml.Name
		start bool
		err   error
	}{
		{mode: False, el: starttls, err: ErrDisabled},
		{mode: False, el: result},
		{mode: Optional, el: starttls, start: true},
		{mode: Optional, el: result},
		{mode: Required, el: starttls, start: true},
		{mode: Required, el: result, err: ErrRequired},
		{mode: Required, el: message, err: ErrRequired},
		{mode: Required, el: wrongNS, err: ErrRequired},
		{mode: RequiredTrusted, el: starttls, start: true},
		{mode: RequiredTrusted, el: result, err: ErrRequired},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			start, err := (&Config{Mode: tc.mode}).Incoming(tc.el)
			if start != tc.start || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Incoming(%v) = %v, %v; want %v, %v", tc.el, start, err, tc.start, tc.err)
			}
			if tc.err == ErrRequired {
				var se stream.Error
				if !errors.As(err, &se) || se.Err != "policy-violation" || len(se.Text) != 1 || se.Text[0].Value == "" {
					t.Fatalf("Incoming error %v does not carry a policy-violation with text", err)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	cert := StaticCert(tls.Certificate{})
	for i, tc := range []struct {
		c   *Config
		err error
	}{
		{c: &Config{}},
		{c: &Config{Mode: Optional}, err: ErrNoCertificate},
		{c: &Config{Mode: RequiredTrusted}, err: ErrNoCertificate},
		{c: &Config{Mode: Required, Cert: cert}},
		{c: &Config{Mode: Mode(9), Cert: cert}, err: ErrMode},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			err := tc.c.Validate()
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Validate = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestClientConfig(t *testing.T) {
	ciphers, err := ParseCiphers("TLSv1.2:ECDHE-RSA-AES128-GCM-SHA256")
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		mode   Mode
		remote string
		sni    string
		verify bool
		err    error
	}{
		{mode: Optional, remote: "Bücher.Example.", sni: "xn--bcher-kva.example"},
		{mode: Required, remote: "example.org", sni: "example.org"},
		{mode: RequiredTrusted, remote: "example.org", sni: "example.org", verify: true},
		{mode: RequiredTrusted, remote: "192.0.2.1", err: domain.ErrInvalid},
		{mode: Optional, remote: "", err: domain.ErrInvalid},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c := &Config{Mode: tc.mode, Ciphers: ciphers}
			cfg, err := c.ClientConfig(tc.remote)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ClientConfig(%q) error %v, want %v", tc.remote, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// VerifyConnection is set in every mode (resumption records
			// what it sees), but refuses a server without a certificate
			// in required_trusted only.
			verifies := cfg.VerifyConnection != nil && cfg.VerifyConnection(tls.ConnectionState{}) != nil
			if cfg.ServerName != tc.sni || verifies != tc.verify || cfg.NextProtos != nil || cfg.ClientSessionCache == nil {
				t.Fatalf("ClientConfig = SNI %q, verify %v, ALPN %q, session cache %v", cfg.ServerName, verifies, cfg.NextProtos, cfg.ClientSessionCache)
			}
			if cfg.MaxVersion != tls.VersionTLS12 || len(cfg.CipherSuites) != 1 {
				t.Fatalf("ciphers not applied: %x %v", cfg.MaxVersion, cfg.CipherSuites)
			}
			direct, err := c.DirectClientConfig(tc.remote)
			if err != nil || len(direct.NextProtos) != 1 || direct.NextProtos[0] != ALPN {
				t.Fatalf("DirectClientConfig ALPN = %q, %v", direct.NextProtos, err)
			}
		})
	}
}

func TestServerConfig(t *testing.T) {
	if _, err := (&Config{Mode: Optional}).ServerConfig(""); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("ServerConfig without Cert = %v, want ErrNoCertificate", err)
	}
	if _, err := (&Config{Mode: Optional}).DirectServerConfig(); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("DirectServerConfig without Cert = %v, want ErrNoCertificate", err)
	}
	c := &Config{Mode: RequiredTrusted, Cert: StaticCert(tls.Certificate{})}
	if _, err := c.ServerConfig("not a domain"); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("ServerConfig(bad peer) = %v, want domain.ErrInvalid", err)
	}
	cfg, err := c.ServerConfig("")
	if err != nil || cfg.ClientAuth != tls.RequestClientCert || cfg.VerifyConnection == nil {
		t.Fatalf("ServerConfig = %v, %v", cfg, err)
	}
}

// TestClientCertSource: with no Cert we present an empty certificate rather
// than failing, and a failing source fails the handshake loudly.
func TestClientCertSource(t *testing.T) {
	cert, err := (&Config{}).clientCert(nil)
	if err != nil || len(cert.Certificate) != 0 {
		t.Fatalf("clientCert without Cert = %v, %v", cert, err)
	}
	boom := errors.New("boom")
	_, err = (&Config{Cert: CertFunc(func() (*tls.Certificate, error) { return nil, boom })}).clientCert(nil)
	if !errors.Is(err, boom) {
		t.Fatalf("clientCert = %v, want the source's error", err)
	}
}

func TestVerifyPeerNoCertificate(t *testing.T) {
	ca, err := testcert.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	err = (&Config{Roots: ca.Pool()}).VerifyPeer("a.example", tls.ConnectionState{})
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, ErrNoPeerCertificate) || ve.Domain != "a.example" {
		t.Fatalf("VerifyPeer = %v", err)
	}
}
