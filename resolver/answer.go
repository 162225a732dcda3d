package resolver

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// errMismatch marks a datagram that is not the reply to our query: another
// message ID, another question, or not a response at all. Over UDP such a
// datagram is ignored rather than trusted, because anyone can send one.
var errMismatch = errors.New("resolver: reply does not match the query")

// maxCNAME bounds how many aliases are followed for one lookup, across the
// answer section and re-queries, so a loop or a silly chain ends.
const maxCNAME = 8

// srvRecord is one SRV answer, with its service remembered.
type srvRecord struct {
	priority, weight, port uint16
	target                 string // lower case, no trailing dot; "." kept as "."
	direct                 bool   // from _xmpps-server
}

// response is what one DNS reply says about the question asked.
type response struct {
	rcode     dnsmessage.RCode
	truncated bool
	// name is where the CNAME chain in the answer section, starting at the
	// question, ends (the question itself without aliases); lower case, no
	// trailing dot.
	name  string
	addrs []netip.Addr
	srvs  []srvRecord
}

func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// parseResponse reads the reply msg to a query with the given id for qname
// and qtype (class IN). It returns errMismatch for a message that is not that
// reply, another error for a malformed one, and otherwise the records of
// qtype owned by the end of the answer's CNAME chain. Records of other types
// or owners, and other classes, are skipped: a reply may only speak about
// what was asked.
func parseResponse(msg []byte, id uint16, qname string, qtype dnsmessage.Type) (*response, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, fmt.Errorf("resolver: malformed DNS reply: %w", err)
	}
	if !h.Response || h.ID != id || h.OpCode != 0 {
		return nil, errMismatch
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil, fmt.Errorf("resolver: malformed DNS reply: %w", err)
	}
	want := canonical(qname)
	if len(qs) != 1 || qs[0].Type != qtype || qs[0].Class != dnsmessage.ClassINET ||
		canonical(qs[0].Name.String()) != want {
		return nil, errMismatch
	}
	resp := &response{rcode: h.RCode, truncated: h.Truncated, name: want}
	if h.Truncated {
		// A truncated answer is asked again over TCP; its partial records
		// are not worth reading.
		return resp, nil
	}

	aliases := make(map[string]string)
	type owned struct {
		owner string
		addr  netip.Addr
		srv   srvRecord
	}
	var recs []owned
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("resolver: malformed DNS reply: %w", err)
		}
		owner := canonical(rh.Name.String())
		switch {
		case rh.Class != dnsmessage.ClassINET:
			err = p.SkipAnswer()
		case rh.Type == dnsmessage.TypeCNAME:
			var r dnsmessage.CNAMEResource
			if r, err = p.CNAMEResource(); err == nil {
				aliases[owner] = canonical(r.CNAME.String())
			}
		case rh.Type != qtype:
			err = p.SkipAnswer()
		case qtype == dnsmessage.TypeA:
			var r dnsmessage.AResource
			if r, err = p.AResource(); err == nil {
				recs = append(recs, owned{owner: owner, addr: netip.AddrFrom4(r.A)})
			}
		case qtype == dnsmessage.TypeAAAA:
			var r dnsmessage.AAAAResource
			if r, err = p.AAAAResource(); err == nil {
				recs = append(recs, owned{owner: owner, addr: netip.AddrFrom16(r.AAAA)})
			}
		case qtype == dnsmessage.TypeSRV:
			var r dnsmessage.SRVResource
			if r, err = p.SRVResource(); err == nil {
				target := r.Target.String()
				if target != "." {
					target = canonical(target)
				}
				recs = append(recs, owned{owner: owner, srv: srvRecord{
					priority: r.Priority, weight: r.Weight, port: r.Port, target: target,
				}})
			}
		default:
			err = p.SkipAnswer()
		}
		if err != nil {
			return nil, fmt.Errorf("resolver: malformed DNS reply: %w", err)
		}
	}

	has := func(name string) bool {
		for _, r := range recs {
			if r.owner == name {
				return true
			}
		}
		return false
	}
	for range maxCNAME {
		next, ok := aliases[resp.name]
		if !ok || has(resp.name) {
			break
		}
		resp.name = next
	}
	for _, r := range recs {
		if r.owner != resp.name {
			continue
		}
		if qtype == dnsmessage.TypeSRV {
			resp.srvs = append(resp.srvs, r.srv)
		} else {
			resp.addrs = append(resp.addrs, r.addr)
		}
	}
	return resp, nil
}
