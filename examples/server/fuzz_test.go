package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfig: any file gives a configuration or an error, never a panic.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("[server]\ndomains = [\"a.test\"]\ncertfile = \"x.pem\"\n[s2s]\n"))
	f.Add([]byte("[server]\ndomains = [1, \"b\"]\n[s2s]\nuse_starttls = \"optional\"\n"))
	f.Add([]byte("[server.x]\n[s2s]\n[[c2s]]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "server.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		loadConfig(path)
	})
}

// FuzzAccounts: any accounts file gives accounts or an error naming a
// line, never a panic.
func FuzzAccounts(f *testing.F) {
	f.Add("alice@a.test pw\n# comment\nbob@a.test  two words\n")
	f.Add("a.test pw\n@a.test x\nalice@a.test/r pw\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data string) {
		path := filepath.Join(dir, "accounts.txt")
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		acc := make(accounts)
		acc.load(path, map[string]bool{"a.test": true})
	})
}
