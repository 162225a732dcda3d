package main

import "testing"

// The example's whole story runs and holds: run fails on any step that did
// not happen as it prints it.
func TestRun(t *testing.T) {
	if err := run(testing.Verbose()); err != nil {
		t.Fatal(err)
	}
}
