package main

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// A configuration mistake stops the stub before it listens: the positioned
// error goes to stderr (here stdout, to show it) and the exit status is 2.
func Example_badConfig() {
	code := run(context.Background(),
		[]string{"-config", "testdata/bad.toml", "-domain", "stub.test", "-listen", "127.0.0.1:0"},
		strings.NewReader(""), os.Stdout, os.Stdout)
	fmt.Println("exit status", code)
	// Output:
	// testdata/bad.toml:3:18: s2s.use_starttls: unknown mode "requird" (want "false", "optional", "required" or "required_trusted")
	// exit status 2
}

// The stub needs to know which domains it serves and where to listen.
func Example_missingFlag() {
	code := run(context.Background(), []string{"-domain", "stub.test"}, strings.NewReader(""), os.Stdout, os.Stdout)
	fmt.Println("exit status", code)
	// Output:
	// stub: -listen is required
	// exit status 2
}
