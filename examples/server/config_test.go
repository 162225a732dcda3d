package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testcert"
)

// writeCert puts a certificate for a.test next to the configuration.
func writeCert(t *testing.T, dir string) {
	t.Helper()
	leaf, err := testcert.SelfSigned(testcert.Options{DNSNames: []string{"a.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), leaf.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	path := filepath.Join(dir, "server.toml")
	doc := "[server]\n  domains = [\"A.Test.\", \"b.test\"]\n  c2s_listen = \"127.0.0.1:0\"\n  certfile = \"cert.pem\"\n\n[s2s]\n  use_starttls = \"optional\"\n  certfile = \"cert.pem\"\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Domains, ",") != "a.test,b.test" || c.C2SListen != "127.0.0.1:0" || c.S2SListen != defaultS2SListen ||
		c.CertFile != filepath.Join(dir, "cert.pem") || c.S2S.UseStartTLS != "optional" {
		t.Fatalf("config %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for i, tc := range []struct {
		doc      string
		sentinel error
		want     string // the error text after the file name
	}{
		0: {"[server]\ndomains = [\"a.test\"]\nbogus = 1\n[s2s]\n", config.ErrUnknownKey,
			`:3:1: server.bogus: unknown key (want accounts`},
		1: {"[server]\ndomains = []\n[s2s]\n", config.ErrValue,
			`:2:1: server.domains: want a non-empty list of domain names, such as ["example.org"]`},
		2: {"[server]\ndomains = [\"a.test\", \"A.TEST\"]\n[s2s]\n", config.ErrDuplicate,
			`:2:1: server.domains: a.test is listed twice`},
		3: {"[server]\ndomains = [\"a.test\"]\nc2s_listen = \"5222\"\n[s2s]\n", config.ErrValue,
			`:3:1: server.c2s_listen: "5222": want host:port, such as "127.0.0.1:5222" (port 0: any free port)`},
		4: {"[server]\ndomains = [\"a.test\"]\naccounts = \"missing.txt\"\n[s2s]\n", config.ErrValue,
			`:3:1: server.accounts: no such file or directory`},
		5: {"[server]\ndomains = [\"a.test\"]\n[s2s]\n", config.ErrMissingKey,
			`:1:2: server: certfile is required`},
		6: {"[server]\ncertfile = \"cert.pem\"\n[s2s]\n", config.ErrMissingKey,
			`:1:2: server: domains is required`},
		7: {"[server]\ndomains = [\"a.test\"]\ncertfile = \"cert.pem\"\n", config.ErrMissingKey,
			`: no [s2s] table`},
		8: {"[server]\ndomains = [\"a.test\"]\n[s2s]\nuse_starttls = \"sometimes\"\n", config.ErrValue,
			`:4:16: s2s.use_starttls: unknown mode "sometimes"`},
		9: {"[server]\ndomains = [\"a.test\"]\ncertfile = \"cert.pem\"\n[s2s]\n[c2s]\n", config.ErrUnknownKey,
			`:5:2: c2s: unknown table (want [server] and [s2s])`},
		10: {"[server]\ndomains = [42]\n[s2s]\n", config.ErrType,
			`:2:1: server.domains: entry 0: want a domain name as a string`},
		11: {"[server]\ndomains = [\"a.test\"]\n[s2s]\nuse_starttls = \"optional\"\n", config.ErrCertFile,
			`:4:16: s2s.use_starttls:`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			dir := t.TempDir()
			writeCert(t, dir)
			path := filepath.Join(dir, "server.toml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(path)
			var ce *config.Error
			if !errors.As(err, &ce) || !errors.Is(err, tc.sentinel) {
				t.Fatalf("err = %v, want a *config.Error wrapping %v", err, tc.sentinel)
			}
			if !strings.HasPrefix(err.Error(), path+tc.want) {
				t.Fatalf("err = %q\nwant  %q…", err, path+tc.want)
			}
		})
	}
}

func TestAccounts(t *testing.T) {
	c := serverConfig{Domains: []string{"a.test"}}
	for i, tc := range []struct {
		file  string
		flags []string
		want  string // error text, or "" for none
	}{
		0: {file: "# users\nalice@a.test secret words\n\nBob@A.test pw\n", flags: []string{"carol@a.test:c:d"}},
		1: {file: "alice@a.test\n", want: ":1: want 'user@domain password'"},
		2: {file: "alice@b.test pw\n", want: `:1: "alice@b.test": b.test is not one of this server's domains`},
		3: {file: "alice@a.test pw\nALICE@a.test pw\n", want: ":2: alice@a.test is defined twice"},
		4: {file: "a.test pw\n", want: `:1: "a.test": want user@domain, without a resource`},
		5: {flags: []string{"alice"}, want: `-user "alice": want user@domain:password`},
		6: {want: "no accounts"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			cc := c
			if tc.file != "" {
				cc.Accounts = filepath.Join(t.TempDir(), "accounts.txt")
				if err := os.WriteFile(cc.Accounts, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			acc, err := loadAccounts(cc, tc.flags)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !acc.check("alice@a.test", []byte("secret words")) || !acc.check("bob@a.test", []byte("pw")) ||
				!acc.check("carol@a.test", []byte("c:d")) || acc.check("alice@a.test", []byte("secret")) {
				t.Fatal("passwords not as written")
			}
		})
	}
}
