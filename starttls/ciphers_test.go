package starttls

import (
	"crypto/tls"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseCiphers(t *testing.T) {
	const (
		v12 = tls.VersionTLS12
		v13 = tls.VersionTLS13
	)
	rsaGCM128 := tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
	ecdsaGCM128 := tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	noCBC := slices.DeleteFunc(slices.Clone(allSuites), func(id uint16) bool {
		return strings.HasSuffix(openSSLName(id), "-SHA")
	})
	for i, tc := range []struct {
		in   string
		want Ciphers
		err  string // substring of the error; "" for success
	}{
		{in: DefaultCiphers, want: Ciphers{MinVersion: v12, MaxVersion: v13}},
		{in: "TLSv1.2", want: Ciphers{MinVersion: v12, MaxVersion: v12}},
		{in: "TLSv1.3", want: Ciphers{MinVersion: v13, MaxVersion: v13}},
		{in: "TLSv1.3 TLSv1.2", want: Ciphers{MinVersion: v12, MaxVersion: v13}},
		{in: "TLSv1.2:TLSv1.3:!TLSv1.3", want: Ciphers{MinVersion: v12, MaxVersion: v12}},
		{in: "!TLSv1.2", want: Ciphers{MinVersion: v13, MaxVersion: v13}},
		{in: "-TLSv1.2:TLSv1.2", want: Ciphers{MinVersion: v12, MaxVersion: v13}},
		{in: "-TLSv1.3", want: Ciphers{MinVersion: v12, MaxVersion: v12}},
		{in: "!aNULL:-TLSv1.2", want: Ciphers{MinVersion: v13, MaxVersion: v13}},
		{in: "!TLSv1.2:TLSv1.2", want: Ciphers{MinVersion: v13, MaxVersion: v13}},
		{in: "!TLSv1.2:!TLSv1.3", err: "leaves no TLS version"},
		{in: "ECDHE-RSA-AES128-GCM-SHA256", want: Ciphers{MinVersion: v12, MaxVersion: v13, Suites: []uint16{rsaGCM128}}},
		{in: "ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES128-GCM-SHA256", want: Ciphers{MinVersion: v12, MaxVersion: v13, Suites: []uint16{rsaGCM128, ecdsaGCM128}}},
		{in: " TLSv1.2 : ECDHE-RSA-AES128-GCM-SHA256 ,", want: Ciphers{MinVersion: v12, MaxVersion: v12, Suites: []uint16{rsaGCM128}}},
		{in: "HIGH:!SHA1", want: Ciphers{MinVersion: v12, MaxVersion: v13, Suites: noCBC}},
		{in: "DEFAULT:!aNULL:!eNULL:!MD5:!RC4:!3DES:!EXPORT", want: Ciphers{MinVersion: v12, MaxVersion: v13, Suites: allSuites}},
		{in: "!aNULL:!SHA1", want: Ciphers{MinVersion: v12, MaxVersion: v13, Suites: noCBC}},
		{in: "AESGCM+aRSA", err: "unknown cipher string token"},
		{in: "AESGCM:-ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256", want: Ciphers{MinVersion: v12, MaxVersion: v13, Suites: append(slices.DeleteFunc(slices.Clone(aliases["AESGCM"]), func(id uint16) bool { return id == rsaGCM128 }), rsaGCM128)}},
		{in: "AESGCM:!ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256", want: Ciphers{MinVersion: v12, MaxVersion: v13, Suites: slices.DeleteFunc(slices.Clone(aliases["AESGCM"]), func(id uint16) bool { return id == rsaGCM128 })}},
		{in: "CHACHA20:aECDSA", want: Ciphers{MinVersion: v12, MaxVersion: v13, Suites: append(aliases["CHACHA20"], slices.DeleteFunc(slices.Clone(aliases["aECDSA"]), func(id uint16) bool { return id == tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 })...)}},
		{in: "TLSv1.3:!aNULL", want: Ciphers{MinVersion: v13, MaxVersion: v13}},

		{in: "", err: "is empty"},
		{in: " : ,", err: "is empty"},
		{in: "TLSv1.1", err: `"TLSv1.1": TLS below 1.2`},
		{in: "TLSv1", err: `"TLSv1": TLS below 1.2`},
		{in: "TLSv1.2:!TLSv1.1:!SSLv3", want: Ciphers{MinVersion: v12, MaxVersion: v12}},
		{in: "TLS_AES_128_GCM_SHA256", err: "Go does not let TLS 1.3 cipher suites be chosen"},
		{in: "AES128-GCM-SHA256", err: `"AES128-GCM-SHA256": Go considers this cipher suite insecure`},
		{in: "DES-CBC3-SHA", err: `"DES-CBC3-SHA": Go considers this cipher suite insecure`},
		{in: "ECDHE-RSA-AES128-SHA256", err: "insecure"},
		{in: "DHE-RSA-AES128-GCM-SHA256", err: `"DHE-RSA-AES128-GCM-SHA256": not a cipher suite Go implements`},
		{in: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", err: "use the OpenSSL spelling"},
		{in: "BOGUS", err: `"BOGUS": unknown cipher string token`},
		{in: "RC4", err: `"RC4": Go supports no cipher suite of this group`},
		{in: "+AESGCM", err: "ordering cannot be honoured"},
		{in: "HIGH:@STRENGTH", err: `"@STRENGTH"`},
		{in: "@SECLEVEL=2", err: "ordering"},
		{in: "!", err: `"!" names nothing`},
		{in: "!ALL", err: "leaves no TLS 1.2 cipher suite"},
		{in: "TLSv1.2:!ECDHE", err: "leaves no TLS 1.2 cipher suite"},
		{in: "TLSv1.3:ECDHE-RSA-AES128-GCM-SHA256", err: "allows only TLS 1.3"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := ParseCiphers(tc.in)
			if tc.err != "" {
				if !errors.Is(err, ErrCiphers) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseCiphers(%q) = %+v, %v; want ErrCiphers containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCiphers(%q): %v", tc.in, err)
			}
			if got.MinVersion != tc.want.MinVersion || got.MaxVersion != tc.want.MaxVersion || !slices.Equal(got.Suites, tc.want.Suites) || (got.Suites == nil) != (tc.want.Suites == nil) {
				t.Fatalf("ParseCiphers(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// TestSuiteNames keeps the name table honest: every entry must be a suite
// crypto/tls calls secure and supports in TLS 1.2.
func TestSuiteNames(t *testing.T) {
	secure := map[uint16]bool{}
	for _, s := range tls.CipherSuites() {
		if slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			secure[s.ID] = true
		}
	}
	if len(suiteNames) != len(allSuites) || len(secure) != len(allSuites) {
		t.Fatalf("%d names, %d suites in order, %d secure TLS 1.2 suites in crypto/tls", len(suiteNames), len(allSuites), len(secure))
	}
	for name, id := range suiteNames {
		if !secure[id] {
			t.Errorf("%s maps to %s, not a secure TLS 1.2 suite", name, tls.CipherSuiteName(id))
		}
	}
	insecure := map[uint16]bool{}
	for _, s := range tls.InsecureCipherSuites() {
		insecure[s.ID] = true
	}
	for name, id := range insecureNames {
		if !insecure[id] {
			t.Errorf("%s maps to %s, not in tls.InsecureCipherSuites", name, tls.CipherSuiteName(id))
		}
	}
}

func TestCiphersApply(t *testing.T) {
	for i, tc := range []struct {
		c          Ciphers
		min, max   uint16
		wantSuites []uint16
	}{
		{c: Ciphers{}, min: tls.VersionTLS12},
		{c: Ciphers{MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13}, min: tls.VersionTLS13, max: tls.VersionTLS13},
		{c: Ciphers{Suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, min: tls.VersionTLS12, wantSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var cfg tls.Config
			tc.c.apply(&cfg)
			if cfg.MinVersion != tc.min || cfg.MaxVersion != tc.max || !slices.Equal(cfg.CipherSuites, tc.wantSuites) {
				t.Fatalf("apply: %x..%x %v", cfg.MinVersion, cfg.MaxVersion, cfg.CipherSuites)
			}
		})
	}
}

// FuzzParseCiphers checks that the parser never panics, that every error
// wraps ErrCiphers, and that a parsed value survives String and a re-parse.
func FuzzParseCiphers(f *testing.F) {
	for _, s := range []string{
		DefaultCiphers, "TLSv1.2", "HIGH:!aNULL:!MD5", "ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-CHACHA20-POLY1305",
		"!TLSv1.3", "-ALL:AES256", "TLS_AES_128_GCM_SHA256", "+RC4", "@STRENGTH", " ", "!",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCiphers(s)
		if err != nil {
			if !errors.Is(err, ErrCiphers) {
				t.Fatalf("error %v does not wrap ErrCiphers", err)
			}
			return
		}
		if c.MinVersion < tls.VersionTLS12 || c.MaxVersion > tls.VersionTLS13 || c.MinVersion > c.MaxVersion {
			t.Fatalf("versions %x..%x", c.MinVersion, c.MaxVersion)
		}
		for _, id := range c.Suites {
			if !slices.Contains(allSuites, id) {
				t.Fatalf("suite %x outside the secure set", id)
			}
		}
		again, err := ParseCiphers(c.String())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", c.String(), err)
		}
		if again.MinVersion != c.MinVersion || again.MaxVersion != c.MaxVersion || !slices.Equal(again.Suites, c.Suites) {
			t.Fatalf("%q -> %+v -> %q -> %+v", s, c, c.String(), again)
		}
	})
}
