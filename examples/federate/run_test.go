package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xmpp-s2s/federation/internal/testcert"
)

// tlsFiles writes a CA and one certificate naming both demo domains, and a
// configuration using them in mode with ciphers; it returns the
// configuration's and the CA's paths.
func tlsFiles(t *testing.T, mode, ciphers string) (conf, ca string) {
	t.Helper()
	dir := t.TempDir()
	c, err := testcert.NewCA("federate test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := c.Leaf(testcert.Options{DNSNames: []string{"a.example", "b.example"}})
	if err != nil {
		t.Fatal(err)
	}
	ca = filepath.Join(dir, "ca.pem")
	conf = filepath.Join(dir, "s2s.toml")
	doc := fmt.Sprintf("[s2s]\n  use_starttls = %q\n  certfile = \"both.pem\"\n  ciphers = %q\n", mode, ciphers)
	for name, data := range map[string][]byte{"ca.pem": c.PEM(), "both.pem": leaf.PEM, "s2s.toml": []byte(doc)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return conf, ca
}

// linkLine matches one "link up" line: local, arrow, remote, direction,
// TLS version, cipher, auth.
var linkLine = regexp.MustCompile(`(?m)^link up +(\S+) (->|<-) (\S+) +(out|in) +(\S+) (\S+) (\S+)$`)

func TestRun(t *testing.T) {
	trusted, trustedCA := tlsFiles(t, "required_trusted", "TLSv1.2:TLSv1.3")
	tls12, _ := tlsFiles(t, "required", "TLSv1.2")
	for i, tc := range []struct {
		args   func() []string
		code   int
		tls    string // the version every link reports; "" when no link is expected
		auth   string // the method every link reports; "" means sasl-external over TLS, dialback without
		stdout []string
		stderr string
	}{
		// The README's command: no arguments, no files.
		0: {args: func() []string { return nil }, tls: "TLS1.3", stdout: []string{
			`(use_starttls = "required_trusted")`,
			`message    a.example -> b.example  delivered: "Hello from a.example"`,
			`message    b.example -> a.example  delivered: "Hello back from b.example"`,
			`message    chat.a.example -> chat.b.example  delivered: "Hello from chat.a.example"`,
			`message    chat.b.example -> a.example  delivered: "Hello from chat.b.example"`,
			"link down  a.example -> b.example  out  closed",
			"connections: 1 between a.example and b.example, carrying both directions of 4 domain pairs",
			"done: 8 messages delivered, 0 bounced",
		}},
		1: {args: func() []string { return []string{"-domains", "Alpha.Example,beta.example", "-timeout", "1m"} }, tls: "TLS1.3", stdout: []string{
			`message    alpha.example -> beta.example  delivered: "Hello from alpha.example"`,
		}},
		2: {args: func() []string { return []string{"-config", "testdata/plain.toml"} }, tls: "none", stdout: []string{
			`(use_starttls = "false")`, "done: 2 messages delivered",
			"connections: 1 between a.example and b.example, carrying both directions of 1 domain pair",
		}},
		3:  {args: func() []string { return []string{"-config", trusted, "-cafile", trustedCA} }, tls: "TLS1.3"},
		18: {args: func() []string { return []string{"-dialback"} }, tls: "TLS1.3", auth: "dialback"},
		4:  {args: func() []string { return []string{"-config", tls12} }, tls: "TLS1.2", auth: "dialback", stdout: []string{"TLS_ECDHE_ECDSA_WITH_"}},
		// The certificate is not from a root the system trusts.
		5: {args: func() []string { return []string{"-config", trusted} }, code: 1,
			stderr: "federate: message a.example -> b.example bounced: remote-server-not-found: "},
		6: {args: func() []string { return []string{"-config", "testdata/deny.toml"} }, code: 1,
			stderr: "federate: message a.example -> b.example bounced: policy-violation: federation with b.example is not allowed"},
		7: {args: func() []string { return []string{"-timeout", "1ns"} }, code: 1, stderr: "context deadline exceeded"},
		8: {args: func() []string { return []string{"-config", "testdata/bad.toml"} }, code: 2,
			stderr: `federate: testdata/bad.toml:3:18: s2s.use_starttls: unknown mode "requird"`},
		9:  {args: func() []string { return []string{"-config", "testdata/missing.toml"} }, code: 2, stderr: "testdata/missing.toml"},
		10: {args: func() []string { return []string{"-cafile", trustedCA} }, code: 2, stderr: "-cafile needs -config"},
		11: {args: func() []string { return []string{"-domains", "a.example"} }, code: 2, stderr: "want two domains"},
		12: {args: func() []string { return []string{"-domains", "a.example,A.example."} }, code: 2, stderr: "a.example twice"},
		13: {args: func() []string { return []string{"-domains", "a.example,b..example"} }, code: 2, stderr: "-domains: invalid domain"},
		14: {args: func() []string { return []string{"extra"} }, code: 2, stderr: "unexpected arguments: extra"},
		15: {args: func() []string { return []string{"-nope"} }, code: 2, stderr: "flag provided but not defined: -nope"},
		16: {args: func() []string { return []string{"-timeout", "0s"} }, code: 2, stderr: "-timeout must be positive"},
		17: {args: func() []string { return []string{"-h"} }, code: 0, stderr: "usage: federate"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args(), strings.NewReader(""), &stdout, &stderr)
			out := stdout.String()
			if code != tc.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, &stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, &stderr)
			}
			if tc.tls == "" {
				return
			}
			// The outgoing and incoming link of each domain pair, both
			// ways: with the demo's own certificates each server hosts two
			// domains, so four pairs and sixteen links; with -config one
			// pair and four. The first pair's links are authenticated by
			// certificate (SASL EXTERNAL) over TLS, where both servers
			// trust the demo's CA, and by dialback without; the pairs
			// piggybacked on its stream (XEP-0220) by dialback.
			pairs := 4
			if strings.HasPrefix(strings.Join(tc.args(), " "), "-config") {
				pairs = 1
			}
			wantAuth := tc.auth
			switch {
			case wantAuth != "":
			case tc.tls == "none":
				wantAuth = "dialback"
			default:
				wantAuth = "sasl-external"
			}
			links := linkLine.FindAllStringSubmatch(out, -1)
			dirs := map[string]int{}
			for _, l := range links {
				dirs[l[4]]++
				auth := wantAuth
				if strings.HasPrefix(l[1], "chat.") || strings.HasPrefix(l[3], "chat.") {
					auth = "dialback"
				}
				if l[5] != tc.tls || l[7] != auth || (tc.tls == "none") != (l[6] == "none") {
					t.Errorf("link %q: want %s and %s", l[0], tc.tls, auth)
				}
			}
			if dirs["out"] != 2*pairs || dirs["in"] != 2*pairs {
				t.Errorf("links up: %v, want %d out and %d in:\n%s", dirs, 2*pairs, 2*pairs, out)
			}
			if stderr.Len() > 0 {
				t.Errorf("warnings on a good run:\n%s", &stderr)
			}
		})
	}
}

// TestBinary runs the demo as the README does, as a built program.
func TestBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the demo: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "federate")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("federate: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if n := len(linkLine.FindAllString(stdout.String(), -1)); n != 16 || !strings.HasSuffix(stdout.String(), "done: 8 messages delivered, 0 bounced\n") {
		t.Errorf("%d links up; stdout:\n%s", n, &stdout)
	}
}
