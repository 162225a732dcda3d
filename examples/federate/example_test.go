package main

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// With -config, the demo reads the [s2s] section both domains use; a
// mistake in it is reported with its position, and nothing starts.
func Example_badConfig() {
	code := run(context.Background(), []string{"-config", "testdata/bad.toml"}, strings.NewReader(""), os.Stdout, os.Stdout)
	fmt.Println("exit status", code)
	// Output:
	// federate: testdata/bad.toml:3:18: s2s.use_starttls: unknown mode "requird" (want "false", "optional", "required" or "required_trusted")
	// exit status 2
}
