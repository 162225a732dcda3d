package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"
	"os"
	"strings"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/xmpp-s2s/federation/s2s"
)

// scramIterations is the PBKDF2 count of the SCRAM credentials, RFC 7677's
// minimum.
const scramIterations = 4096

// account is one user. The password is kept for PLAIN; the salted forms
// are computed once, at start, for SCRAM.
type account struct {
	password []byte
	salt     []byte
	salted   map[string][]byte // by SCRAM mechanism name
}

// accounts are the server's users by bare JID (canonical form). They are
// read at start and never change, so they need no lock.
type accounts map[string]*account

// scramHashes are the SCRAM mechanisms the server offers, by name.
var scramHashes = map[string]func() hash.Hash{
	sasl.ScramSha256.Name: sha256.New,
	sasl.ScramSha1.Name:   sha1.New,
}

// add checks and adds one account; where names the source in errors.
func (a accounts) add(where, address, password string, domains map[string]bool) error {
	j, err := jid.Parse(address)
	if err != nil {
		return fmt.Errorf("%s: %q is not a JID: %w", where, address, err)
	}
	if j.Localpart() == "" || j.Resourcepart() != "" {
		return fmt.Errorf("%s: %q: want user@domain, without a resource", where, address)
	}
	d, err := s2s.NormalizeDomain(j.Domainpart())
	if err != nil {
		return fmt.Errorf("%s: %q: %w", where, address, err)
	}
	if !domains[d] {
		return fmt.Errorf("%s: %q: %s is not one of this server's domains", where, address, d)
	}
	if password == "" {
		return fmt.Errorf("%s: %q has no password", where, address)
	}
	bare := j.Localpart() + "@" + d
	if _, dup := a[bare]; dup {
		return fmt.Errorf("%s: %s is defined twice", where, bare)
	}
	acc := &account{password: []byte(password), salt: make([]byte, 16), salted: make(map[string][]byte)}
	if _, err := rand.Read(acc.salt); err != nil {
		return err
	}
	for name, h := range scramHashes {
		acc.salted[name] = sasl.SCRAMSaltPassword(h, acc.password, acc.salt, scramIterations)
	}
	a[bare] = acc
	return nil
}

// loadAccounts reads a file of "user@domain password" lines; blank lines
// and lines starting with # are skipped, and the password is the rest of
// the line after the first run of spaces or tabs.
func (a accounts) load(path string, domains map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return fmt.Errorf("%s:%d: want 'user@domain password'", path, n)
		}
		if err := a.add(fmt.Sprintf("%s:%d", path, n), line[:i], strings.TrimSpace(line[i:]), domains); err != nil {
			return err
		}
	}
	return sc.Err()
}

// check reports whether password is user's (user is a bare JID).
func (a accounts) check(user string, password []byte) bool {
	acc, ok := a[user]
	if !ok {
		// Same work either way, so that timing does not tell which
		// accounts exist.
		subtle.ConstantTimeCompare(password, password)
		return false
	}
	return subtle.ConstantTimeCompare(acc.password, password) == 1
}

// exists reports whether bare is an account.
func (a accounts) exists(bare string) bool {
	_, ok := a[bare]
	return ok
}

// userJID returns the bare JID of a SASL username at domain, in the
// canonical form accounts are kept in (PRECIS maps case).
func userJID(username []byte, domain string) (string, bool) {
	j, err := jid.New(string(username), domain, "")
	if err != nil || j.Localpart() == "" {
		return "", false
	}
	return j.Localpart() + "@" + domain, true
}
