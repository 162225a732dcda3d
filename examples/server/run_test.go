package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/internal/testcert"
)

// goTool returns the go command: `go test` puts the one running the test
// first in PATH.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build the example with: %v", err)
	}
	return p
}

// buildServer builds the example as a program, as `go run` would.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "server")
	cmd := exec.Command(goTool(t), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The program builds, starts from a configuration file, serves a client,
// and exits 0 on SIGTERM.
func TestRunProgram(t *testing.T) {
	bin := buildServer(t)
	ca, err := testcert.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(testcert.Options{DNSNames: []string{"a.test"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.pem"), leaf.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "[server]\ndomains = [\"a.test\"]\nc2s_listen = \"127.0.0.1:0\"\ns2s_listen = \"127.0.0.1:0\"\n\n[s2s]\nuse_starttls = \"optional\"\ncertfile = \"a.pem\"\n"
	if err := os.WriteFile(filepath.Join(dir, "server.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-config", filepath.Join(dir, "server.toml"), "-user", "alice@a.test:pw")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	}()

	addrs := make(map[string]string)
	timeout := time.After(wait)
	for len(addrs) < 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the server exited before listening: %v", <-exited)
			}
			if kind, addr, ok := strings.Cut(l, " listening on "); ok {
				addrs[kind] = addr
			}
		case <-timeout:
			t.Fatal("the server did not say where it listens")
		}
	}

	s := &testServer{domain: "a.test", c2s: addrs["c2s"], s2s: addrs["s2s"], roots: ca.Pool()}
	alice := mustLogin(t, s, "alice", "pw")
	alice.send(`<iq to='a.test' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	alice.expect("the pong", is("iq", "result", "a.test"))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The client's stream ends (system-shutdown), then the program.
	alice.closed()
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("the server did not exit after SIGTERM")
	}
	if len(rest) == 0 || rest[len(rest)-1] != "stopped" {
		t.Fatalf("last output %q, want \"stopped\"", rest)
	}
}

// A bad configuration file stops the program before it starts, with exit
// code 2 and the error's position on stderr.
func TestRunBadConfig(t *testing.T) {
	bin := buildServer(t)
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte("[server]\ndomains = [\"a.test\"]\n[s2s]\nuse_starttls = \"sometimes\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", path, "-user", "alice@a.test:pw")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
		t.Fatalf("err = %v, want exit code %d", err, exitUsage)
	}
	if want := path + ":4:16: s2s.use_starttls: unknown mode"; !strings.HasPrefix(string(out), want) {
		t.Fatalf("output %q, want %q…", out, want)
	}
}
