package config

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinels wrapped by an [Error], one per family of mistakes, for
// errors.Is. An Error may wrap a more specific cause as well (a
// *toml.DecodeError, an fs error, or domain.ErrInvalid).
var (
	// ErrSyntax: the document is not valid TOML (or defines a key twice).
	ErrSyntax = errors.New("config: invalid TOML")
	// ErrUnknownKey: a key that the [s2s] section does not have.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrMissingKey: a mandatory key of a host_policy or address entry is absent.
	ErrMissingKey = errors.New("config: missing key")
	// ErrType: a value of the wrong TOML type (a string where an integer goes).
	ErrType = errors.New("config: wrong type")
	// ErrValue: a value of the right type that is not allowed.
	ErrValue = errors.New("config: value not allowed")
	// ErrDuplicate: a host listed twice in host_policy or address.
	ErrDuplicate = errors.New("config: duplicate host")
	// ErrCertFile: certfile cannot be used, or is needed and absent.
	ErrCertFile = errors.New("config: unusable certfile")
	// ErrRead: the configuration file itself cannot be read.
	ErrRead = errors.New("config: cannot read file")
)

// Error is what Parse and Load return: one problem, where it is and what is
// allowed instead. Its text reads
//
//	s2s.toml:4:15: s2s.use_starttls: unknown mode "requird" (want "false", …)
//
// with the position left out when the TOML gives none (for instance for a
// rule that spans two keys).
type Error struct {
	// File is the name given to Parse, or the path given to Load.
	File string
	// Line and Column are 1-based; Column counts bytes. Both are 0 when
	// the problem has no single place in the document.
	Line, Column int
	// Key is the key path, always rooted at "s2s" whether or not the
	// document had an [s2s] table, with 0-based array indexes:
	// "s2s.host_policy[2].host". Empty for syntax errors outside any key.
	Key string
	// Msg says what is wrong and what is allowed. It never contains the
	// dialback secret.
	Msg string
	// Err is the sentinel of the family (ErrValue, …), possibly wrapping a
	// more specific cause.
	Err error
}

// Error returns "file:line:column: key: msg", leaving out the parts that are
// not known.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		if e.File != "" {
			b.WriteString(":")
		}
		b.WriteString(strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }
