package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
)

// serverConfig is the [server] table of the configuration file, checked and
// with its defaults, plus the [s2s] section the Manager takes.
type serverConfig struct {
	Domains   []string // canonical (lower-case A-label), at least one
	C2SListen string   // host:port
	S2SListen string   // host:port
	CertFile  string   // the c2s certificate; the s2s certfile when not set
	CAFile    string   // trusted roots for use_starttls = "required_trusted"; "" = system
	Accounts  string   // accounts file, or "" for accounts from -user only
	S2S       config.S2S
}

// Defaults of the [server] keys.
const (
	defaultC2SListen = "127.0.0.1:5222"
	defaultS2SListen = "127.0.0.1:5269"
)

// serverKeys are the keys the [server] table allows, with what each takes,
// for the message about an unknown key.
var serverKeys = map[string]string{
	"domains":    "a list of domain names",
	"c2s_listen": "host:port",
	"s2s_listen": "host:port",
	"certfile":   "a PEM file",
	"cafile":     "a PEM file",
	"accounts":   "a file of 'user@domain password' lines",
}

// loadConfig reads the configuration file: a [server] table of the
// example's own and MongooseIM's [s2s] section (package config, which
// ignores other tables). Errors are *config.Error values naming the file,
// line, column and key.
func loadConfig(path string) (serverConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return serverConfig{}, &config.Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err), Err: fmt.Errorf("%w: %w", config.ErrRead, err)}
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		// config.Parse positions syntax errors.
		_, err := config.Parse(path, data)
		return serverConfig{}, err
	}
	p := &parser{file: path, dir: filepath.Dir(path), pos: keyPositions(data)}
	c := serverConfig{C2SListen: defaultC2SListen, S2SListen: defaultS2SListen}
	tables := make([]string, 0, len(doc))
	for k := range doc {
		tables = append(tables, k)
	}
	sort.Slice(tables, func(i, j int) bool { return p.before(tables[i], tables[j]) })
	for _, k := range tables {
		if k != "server" && k != "s2s" {
			return c, p.errAt(k, config.ErrUnknownKey, "unknown table (want [server] and [s2s])")
		}
	}
	if _, ok := doc["s2s"]; !ok {
		// Without the table, config.Parse would read the whole file as the
		// section and complain about [server].
		return c, p.errAt("", config.ErrMissingKey, "no [s2s] table (an empty one gives every default)")
	}
	if c.S2S, err = config.Parse(path, data); err != nil {
		return c, err
	}
	t, ok := doc["server"].(map[string]any)
	if !ok {
		return c, p.errAt("server", config.ErrMissingKey, "want a [server] table with at least domains = [\"example.org\"]")
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return p.before("server."+keys[i], "server."+keys[j]) })
	for _, k := range keys {
		v, key := t[k], "server."+k
		switch k {
		case "domains":
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				return c, p.errAt(key, config.ErrValue, "want a non-empty list of domain names, such as [\"example.org\"]")
			}
			seen := make(map[string]bool)
			for i, e := range list {
				s, ok := e.(string)
				if !ok {
					return c, p.errAt(key, config.ErrType, "entry %d: want a domain name as a string", i)
				}
				d, err := s2s.NormalizeDomain(s)
				if err != nil {
					return c, p.errAt(key, config.ErrValue, "entry %d: %v", i, err)
				}
				if seen[d] {
					return c, p.errAt(key, config.ErrDuplicate, "%s is listed twice", d)
				}
				seen[d] = true
				c.Domains = append(c.Domains, d)
			}
		case "c2s_listen", "s2s_listen":
			s, ok := v.(string)
			if !ok {
				return c, p.errAt(key, config.ErrType, "want host:port as a string, such as \"127.0.0.1:5222\"")
			}
			if _, _, err := net.SplitHostPort(s); err != nil {
				return c, p.errAt(key, config.ErrValue, "%q: want host:port, such as \"127.0.0.1:5222\" (port 0: any free port)", s)
			}
			if k == "c2s_listen" {
				c.C2SListen = s
			} else {
				c.S2SListen = s
			}
		case "certfile", "cafile", "accounts":
			s, ok := v.(string)
			if !ok || s == "" {
				return c, p.errAt(key, config.ErrType, "want a file name as a non-empty string")
			}
			if !filepath.IsAbs(s) {
				s = filepath.Join(p.dir, s)
			}
			if _, err := os.Stat(s); err != nil {
				return c, p.errAt(key, config.ErrValue, "%v", errors.Unwrap(err))
			}
			switch k {
			case "certfile":
				c.CertFile = s
			case "cafile":
				c.CAFile = s
			default:
				c.Accounts = s
			}
		default:
			allowed := make([]string, 0, len(serverKeys))
			for k, what := range serverKeys {
				allowed = append(allowed, k+" ("+what+")")
			}
			sort.Strings(allowed)
			return c, p.errAt(key, config.ErrUnknownKey, "unknown key (want %s)", strings.Join(allowed, ", "))
		}
	}
	if len(c.Domains) == 0 {
		return c, p.errAt("server", config.ErrMissingKey, "domains is required: the domains this server serves, such as [\"example.org\"]")
	}
	if c.CertFile == "" {
		c.CertFile = c.S2S.CertFile
	}
	if c.CertFile == "" {
		// Positioned at use_starttls when that is what needs it.
		if err := c.S2S.CheckCertFile(); err != nil {
			return c, err
		}
		return c, p.errAt("server", config.ErrMissingKey, "certfile is required: client connections always use TLS (set server.certfile, or s2s.certfile for both)")
	}
	// Without s2s.certfile, the s2s streams present server.certfile (see
	// newServer), so CheckCertFile has nothing to miss.
	return c, nil
}

// parser positions errors in the [server] table.
type parser struct {
	file, dir string
	pos       map[string]unstable.Position
}

func (p *parser) errAt(key string, sentinel error, format string, args ...any) error {
	e := &config.Error{File: p.file, Key: key, Msg: fmt.Sprintf(format, args...), Err: sentinel}
	if at, ok := p.pos[key]; ok {
		e.Line, e.Column = at.Line, at.Column
	}
	return e
}

// before orders keys by where they are written, so that the first mistake
// in the file is the one reported.
func (p *parser) before(a, b string) bool {
	pa, pb := p.pos[a], p.pos[b]
	if pa.Line != pb.Line {
		return pa.Line < pb.Line
	}
	return pa.Column < pb.Column
}

// keyPositions records where each top-level table and each key of a table
// is written ("server", "server.domains"); go-toml positions only its own
// errors. The [server] table is flat, so one level is enough.
func keyPositions(data []byte) map[string]unstable.Position {
	pos := make(map[string]unstable.Position)
	var p unstable.Parser
	p.Reset(data)
	table := ""
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table:
			var parts []string
			it := n.Key()
			var first *unstable.Node
			for it.Next() {
				if first == nil {
					first = it.Node()
				}
				parts = append(parts, string(it.Node().Data))
			}
			table = strings.Join(parts, ".")
			if first != nil {
				if _, ok := pos[table]; !ok {
					pos[table] = p.Shape(first.Raw).Start
				}
			}
		case unstable.KeyValue:
			var parts []string
			it := n.Key()
			var first *unstable.Node
			for it.Next() {
				if first == nil {
					first = it.Node()
				}
				parts = append(parts, string(it.Node().Data))
			}
			key := strings.Join(parts, ".")
			if table != "" {
				key = table + "." + key
			}
			if first != nil {
				pos[key] = p.Shape(first.Raw).Start
			}
		}
	}
	return pos
}
