package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// Load reads the file at path and parses it with [Parse], naming it path in
// errors. A file that cannot be read gives an [*Error] wrapping [ErrRead] and
// the fs error.
func Load(path string) (S2S, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return S2S{}, &Error{
			File: path,
			Msg:  fmt.Sprintf("cannot read: %v", unwrapPath(err)),
			Err:  fmt.Errorf("%w: %w", ErrRead, err),
		}
	}
	return Parse(path, data)
}

// Parse decodes a TOML document into an S2S, with every absent option at its
// default and a fresh random Shared secret unless the document sets one.
//
// The document is either a whole server configuration or just the section:
// when its top level has an s2s key, that table is the section and every
// other top-level key is ignored; otherwise the whole document is the
// section, so every top-level key must be an [s2s] option. (A whole
// configuration that has no [s2s] table therefore needs an empty one to get
// the defaults.)
//
// name appears in errors and locates a relative certfile: it is resolved
// against filepath.Dir(name), which is the working directory when name has
// no directory part. The certificate file is read and checked here.
//
// Every error is an [*Error]; the first problem in file order is reported.
func Parse(name string, data []byte) (S2S, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return S2S{}, syntaxError(name, err)
	}
	d := &decoder{file: name, dir: filepath.Dir(name), pos: indexPositions(data)}
	section := doc
	if v, ok := doc[sectionKey]; ok {
		d.whole = true
		t, ok := v.(map[string]any)
		if !ok {
			return S2S{}, d.typeErr(sectionKey, v, "a table")
		}
		section = t
	}
	c := Default()
	if err := d.section(&c, section); err != nil {
		return S2S{}, err
	}
	return c, nil
}

// sectionKey names the section in a whole configuration and roots every key
// path in errors.
const sectionKey = "s2s"

func syntaxError(name string, err error) error {
	e := &Error{File: name, Err: fmt.Errorf("%w: %w", ErrSyntax, err)}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		e.Line, e.Column = de.Position()
		e.Key = strings.Join(de.Key(), ".")
	}
	e.Msg = "invalid TOML: " + strings.TrimPrefix(err.Error(), "toml: ")
	return e
}
