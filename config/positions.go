package config

import (
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// positions records where each key path of a document is written, so that
// errors found after decoding (an unknown mode, a duplicate host) point at the
// line and column the operator has to fix. go-toml's decoder only positions
// its own errors, so we walk the document a second time with its parser.
//
// Paths are the document's own (not rooted at "s2s" when the document holds
// just the section's keys), built by keyPath and indexPath exactly as the
// decoder builds them.
type positions struct {
	key map[string]unstable.Position // where the key (or table header) is
	val map[string]unstable.Position // where the value starts
}

// indexPositions walks a document that go-toml has already decoded without
// error; on a document it cannot parse it returns what it found so far.
func indexPositions(data []byte) positions {
	x := positions{
		key: make(map[string]unstable.Position),
		val: make(map[string]unstable.Position),
	}
	var p unstable.Parser
	p.Reset(data)
	// count holds, for each array of tables, how many elements the headers
	// seen so far have opened: [[a]] twice makes a[0] and a[1], and a later
	// [a.b] or [[a.b]] lives under the last of them.
	count := make(map[string]int)
	prefix := ""
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			path := ""
			it := n.Key()
			for it.Next() {
				k := it.Node()
				path = keyPath(path, string(k.Data))
				last := it.IsLast()
				if last && n.Kind == unstable.ArrayTable {
					i := count[path]
					count[path] = i + 1
					path = indexPath(path, i)
				} else if c := count[path]; c > 0 {
					path = indexPath(path, c-1)
				}
				x.at(&p, x.key, path, k.Raw)
			}
			prefix = path
		case unstable.KeyValue:
			x.keyValue(&p, prefix, n)
		}
	}
	return x
}

// keyValue records a key = value expression under prefix, and what its value
// contains.
func (x positions) keyValue(p *unstable.Parser, prefix string, n *unstable.Node) {
	path := prefix
	var end uint32
	it := n.Key()
	for it.Next() {
		k := it.Node()
		path = keyPath(path, string(k.Data))
		x.at(p, x.key, path, k.Raw)
		end = k.Raw.Offset + k.Raw.Length
	}
	// The value node of an array carries no range, so find the value's start
	// by skipping "= " after the last key part; that works for every kind.
	data := p.Data()
	off := int(end)
	for off < len(data) && (data[off] == ' ' || data[off] == '\t' || data[off] == '=') {
		off++
	}
	start := p.Shape(unstable.Range{Offset: uint32(off)}).Start //nolint:gosec // documents are small
	x.value(p, path, n.Value(), start)
}

// value records the start of a value at path and, for arrays and inline
// tables, of everything inside.
func (x positions) value(p *unstable.Parser, path string, v *unstable.Node, start unstable.Position) {
	if _, ok := x.val[path]; !ok {
		x.val[path] = start
	}
	switch v.Kind {
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			at := start // a nested array has no range of its own
			if c.Kind != unstable.Array {
				at = p.Shape(c.Raw).Start
			}
			x.value(p, indexPath(path, i), c, at)
			i++
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				x.keyValue(p, path, c)
			}
		}
	}
}

func (x positions) at(p *unstable.Parser, m map[string]unstable.Position, path string, r unstable.Range) {
	if _, ok := m[path]; !ok {
		m[path] = p.Shape(r).Start
	}
}

// ofValue returns where the value at path starts, falling back to its key.
func (x positions) ofValue(path string) (unstable.Position, bool) {
	if pos, ok := x.val[path]; ok {
		return pos, true
	}
	pos, ok := x.key[path]
	return pos, ok
}

// ofKey returns where the key of path is written, falling back to its value
// (array elements have no key of their own).
func (x positions) ofKey(path string) (unstable.Position, bool) {
	if pos, ok := x.key[path]; ok {
		return pos, true
	}
	pos, ok := x.val[path]
	return pos, ok
}

// keyPath appends one key to a path, quoting it when it is not a bare key so
// that "a.b" written as one quoted key cannot be mistaken for two.
func keyPath(prefix, key string) string {
	if !bareKey(key) {
		key = strconv.Quote(key)
	}
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// indexPath appends a 0-based array index to a path.
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func bareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
