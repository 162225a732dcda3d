package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunRefuses checks each way run stops before serving, in process: the
// exit status and what stderr says.
func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	base := []string{"-domain", "stub.test", "-listen", "127.0.0.1:0"}
	for i, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		0:  {args: []string{"-listen", "127.0.0.1:0"}, code: 2, stderr: "stub: -domain is required\n"},
		1:  {args: []string{"-domain", "stub.test"}, code: 2, stderr: "stub: -listen is required\n"},
		2:  {args: []string{"-domain", "stub..test", "-listen", ":0"}, code: 2, stderr: "stub: -domain: invalid domain"},
		3:  {args: append([]string{"-shutdown-timeout", "0s"}, base...), code: 2, stderr: "-shutdown-timeout must be positive"},
		4:  {args: append(base, "extra"), code: 2, stderr: "stub: unexpected arguments: extra\n"},
		5:  {args: append([]string{"-bogus"}, base...), code: 2, stderr: "flag provided but not defined: -bogus"},
		6:  {args: append([]string{"-config", filepath.Join(dir, "missing.toml")}, base...), code: 2, stderr: filepath.Join(dir, "missing.toml") + ": "},
		7:  {args: append([]string{"-config", "testdata/bad.toml"}, base...), code: 2, stderr: "testdata/bad.toml:3:18: s2s.use_starttls: unknown mode"},
		8:  {args: append([]string{"-cafile", filepath.Join(dir, "missing.pem")}, base...), code: 2, stderr: "stub: -cafile: "},
		9:  {args: append([]string{"-cafile", notPEM}, base...), code: 2, stderr: "no PEM certificate in it"},
		10: {args: []string{"-domain", "stub.test", "-listen", busy.Addr().String()}, code: 1, stderr: "address already in use"},
		11: {args: []string{"-h"}, code: 0, stderr: "usage: stub"},
		12: {args: append([]string{"-peer", "host.test"}, base...), code: 2, stderr: `invalid value "host.test" for flag -peer: "host.test": want DOMAIN=IP:PORT`},
		13: {args: append([]string{"-max-per-address", "-1"}, base...), code: 2, stderr: "stub: -max-per-address must be positive, or 0 for no bound\n"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, &stderr, tc.code, tc.stderr)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q", &stdout)
			}
		})
	}
}

// lineWriter hands each line written to a channel. The events writer
// writes whole lines, as many as are pending in one call.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	for rest := string(p); rest != ""; {
		line, after, ok := strings.Cut(rest, "\n")
		if !ok {
			panic("a write that does not end a line: " + rest)
		}
		w <- line + "\n"
		rest = after
	}
	return len(p), nil
}

// TestRunCancel runs the stub in process until its context ends, as a
// signal ends it in main: it reports that it listens, skips blank stdin
// lines, reports a bad one, and returns 0.
func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := make(lineWriter, 10)
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-domain", "stub.test", "-listen", "127.0.0.1:0"}, strings.NewReader("\n  \nnot xml\n"), stdout, &stderr)
	}()
	var lines []string
	for len(lines) < 2 {
		select {
		case l := <-stdout:
			lines = append(lines, l)
		case code := <-done:
			t.Fatalf("run returned %d early; stderr:\n%s", code, &stderr)
		case <-time.After(wait):
			t.Fatalf("stdout so far: %q", lines)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, &stderr)
	}
	if !strings.HasPrefix(lines[0], `{"event":"listening","addr":"127.0.0.1:`) ||
		!strings.HasPrefix(lines[1], `{"event":"error","op":"send","error":"s2s: not a stanza`) || !strings.HasSuffix(lines[1], `"xml":"not xml"}`+"\n") {
		t.Errorf("stdout:\n%s", strings.Join(lines, ""))
	}
	select {
	case l := <-stdout:
		t.Errorf("more output: %q", l)
	default:
	}
}
