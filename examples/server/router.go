package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/s2s"
)

// Namespaces the server answers for itself.
const (
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsPing      = "urn:xmpp:ping"
	nsRoster    = "jabber:iq:roster"
)

// router moves stanzas between client sessions, the server itself and the
// Manager. Every stanza it takes is delivered, answered, or bounced to its
// sender with a stanza error; presence, which RFC 6121 lets a server drop,
// is the one exception, and is logged when dropped.
//
// It is safe for concurrent use. Its lock is never held while a stanza is
// routed on: the Manager may call Bounce from within SendStanza, and that
// comes straight back here.
type router struct {
	log      *slog.Logger
	domains  map[string]bool
	accounts accounts
	m        *s2s.Manager

	mu       sync.Mutex
	sessions map[string]map[string]*client // bare JID -> resource -> session
	// subscribers[u] are the bare JIDs that receive u's presence;
	// subscribedTo[u] are those whose presence u receives. Memory only.
	subscribers  map[string]map[string]bool
	subscribedTo map[string]map[string]bool
	// asked[u] are the contacts u sent a subscription request to that
	// are not answered yet: only those may approve one (RFC 6121 §3.1.6),
	// so that no peer can grow these maps on its own.
	asked map[string]map[string]bool
}

func newRouter(log *slog.Logger, domains []string, acc accounts) *router {
	r := &router{
		log:          log,
		domains:      make(map[string]bool),
		accounts:     acc,
		sessions:     make(map[string]map[string]*client),
		subscribers:  make(map[string]map[string]bool),
		subscribedTo: make(map[string]map[string]bool),
		asked:        make(map[string]map[string]bool),
	}
	for _, d := range domains {
		r.domains[d] = true
	}
	return r
}

// isLocal is the Manager's IsLocal.
func (r *router) isLocal(d string) bool { return r.domains[d] }

// fromRemote is the Manager's Deliver: a stanza from a remote domain for
// one of ours.
func (r *router) fromRemote(st s2s.Stanza) { r.route(st) }

// bounce is the Manager's Bounce: the stanza goes back to its local sender
// as the stanza error the Manager's condition names.
func (r *router) bounce(b s2s.Bounce) {
	r.log.Info("bounced", "from", b.Stanza.From, "to", b.Stanza.To, "condition", b.Condition, "reason", b.Text)
	if reply, ok := b.Stanza.ErrorReply(b.Condition, b.Text); ok {
		r.route(reply)
	}
}

// fromClient takes a stanza from a bound session, its 'from' already
// stamped with the session's full JID.
func (r *router) fromClient(c *client, st s2s.Stanza) {
	switch {
	case st.Name == "presence" && st.To == "":
		r.broadcast(c, st)
		return
	case st.Name == "presence" && isSubscription(st.Type):
		r.outboundSubscription(c, st)
		return
	case st.To == "":
		// RFC 6120 §10.3: no 'to' means the user's own account.
		if st.Name == "iq" {
			r.accountIQ(st, c.bare)
			return
		}
		var err error
		if st, err = st.Readdress(st.From, c.bare); err != nil {
			r.log.Warn("cannot readdress", "err", err)
			return
		}
	}
	r.route(st)
}

// route sends st on by its 'to': to a local session or account, to the
// server itself, or to the Manager.
func (r *router) route(st s2s.Stanza) {
	to, err := jid.Parse(st.To)
	if err != nil {
		r.reply(st, stanza.JIDMalformed, fmt.Sprintf("%q is not a valid address", st.To))
		return
	}
	d, err := s2s.NormalizeDomain(to.Domainpart())
	if err != nil {
		r.reply(st, stanza.JIDMalformed, fmt.Sprintf("%q is not a valid address", st.To))
		return
	}
	if !r.domains[d] {
		r.toRemote(st)
		return
	}
	if to.Localpart() == "" {
		r.toServer(st)
		return
	}
	r.toLocal(st, to.Localpart()+"@"+d, to.Resourcepart())
}

func (r *router) toRemote(st s2s.Stanza) {
	if r.m == nil {
		r.reply(st, stanza.ServiceUnavailable, "federation is not running")
		return
	}
	err := r.m.SendStanza(context.Background(), st)
	switch {
	case err == nil:
	case errors.Is(err, s2s.ErrClosed):
		r.reply(st, stanza.ServiceUnavailable, "the server is shutting down")
	default:
		r.log.Info("not sent", "from", st.From, "to", st.To, "err", err)
		r.reply(st, stanza.BadRequest, err.Error())
	}
}

// reply answers st with an error, unless st is an error itself.
func (r *router) reply(st s2s.Stanza, cond stanza.Condition, text string) {
	if reply, ok := st.ErrorReply(cond, text); ok {
		r.route(reply)
		return
	}
	r.log.Debug("error stanza dropped", "from", st.From, "to", st.To, "condition", cond, "reason", text)
}

// toLocal delivers to the sessions of a local account (RFC 6121 §8.5).
func (r *router) toLocal(st s2s.Stanza, bare, resource string) {
	if !r.accounts.exists(bare) {
		if st.Name == "presence" {
			r.log.Debug("presence for no account dropped", "to", st.To, "type", st.Type)
			return
		}
		if st.Name == "iq" && (st.Type == "result" || st.Type == "error") {
			return
		}
		r.reply(st, stanza.ServiceUnavailable, "no such user")
		return
	}
	switch st.Name {
	case "presence":
		r.inboundPresence(st, bare, resource)
	case "iq":
		if resource == "" {
			r.accountIQ(st, bare)
			return
		}
		if c := r.session(bare, resource); c != nil {
			r.deliver(c, st)
			return
		}
		if st.Type == "get" || st.Type == "set" {
			r.reply(st, stanza.ServiceUnavailable, "that resource is not online")
		}
	default: // message
		if resource != "" {
			if c := r.session(bare, resource); c != nil {
				r.deliver(c, st)
				return
			}
		}
		targets := r.sessionsOf(bare)
		if len(targets) == 0 || st.Type == "groupchat" {
			r.reply(st, stanza.ServiceUnavailable, "the user is not online, and this server stores no messages")
			return
		}
		for _, c := range targets {
			r.deliver(c, st)
		}
	}
}

// deliver queues st for a session; a session that does not keep up costs
// the sender a resource-constraint error, not the server its memory.
func (r *router) deliver(c *client, st s2s.Stanza) {
	if !c.enqueue(st) {
		r.reply(st, stanza.ResourceConstraint, "the recipient is not reading its stream")
	}
}

func (r *router) session(bare, resource string) *client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[bare][resource]
}

func (r *router) sessionsOf(bare string) []*client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessionsLocked(bare)
}

func (r *router) sessionsLocked(bare string) []*client {
	var out []*client
	for _, c := range r.sessions[bare] {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].resource < out[j].resource })
	return out
}

// bind registers a session for user (a bare JID) under the resource it
// asked for, or a generated one when it asked for none or one in use
// (RFC 6120 §7.7.2.2 lets the server override).
func (r *router) bind(user, resource string, c *client) (jid.JID, error) {
	local, dom, _ := strings.Cut(user, "@")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions[user] == nil {
		r.sessions[user] = make(map[string]*client)
	}
	if resource == "" || r.sessions[user][resource] != nil {
		resource += randomID()
	}
	j, err := jid.New(local, dom, resource)
	if err != nil {
		return jid.JID{}, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"": "invalid resource"}}
	}
	c.full, c.bare, c.resource = j, user, j.Resourcepart()
	r.sessions[user][c.resource] = c
	return j, nil
}

// unbind removes a session; when it had sent available presence, its
// contacts and the user's other sessions learn that it is gone.
func (r *router) unbind(c *client) {
	r.mu.Lock()
	if r.sessions[c.bare][c.resource] != c {
		r.mu.Unlock()
		return
	}
	delete(r.sessions[c.bare], c.resource)
	if len(r.sessions[c.bare]) == 0 {
		delete(r.sessions, c.bare)
	}
	wasAvailable := c.available
	c.available = false
	r.mu.Unlock()
	if wasAvailable {
		st, err := s2s.ParseStanza([]byte(fmt.Sprintf(`<presence xmlns='jabber:server' from='%s' type='unavailable'/>`, escape(c.full.String()))))
		if err == nil {
			r.broadcast(c, st)
		}
	}
}

func isSubscription(typ string) bool {
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return true
	}
	return false
}

// broadcast handles presence without 'to' from a session (RFC 6121 §4.2,
// §4.4): it goes to every subscriber and to the user's other sessions. The
// first available presence also probes the contacts the user is subscribed
// to and shows the user the presence of its other sessions.
func (r *router) broadcast(c *client, st s2s.Stanza) {
	available := st.Type == ""
	if !available && st.Type != "unavailable" {
		r.reply(st, stanza.BadRequest, "presence of type "+st.Type+" needs a 'to'")
		return
	}
	r.mu.Lock()
	initial := available && !c.available
	c.available, c.presence = available, st
	var to []string
	for s := range r.subscribers[c.bare] {
		to = append(to, s)
	}
	var probe []string
	var others []s2s.Stanza
	for _, o := range r.sessionsLocked(c.bare) {
		if o == c {
			continue
		}
		to = append(to, o.full.String())
		if initial && o.available {
			others = append(others, o.presence)
		}
	}
	if initial {
		for s := range r.subscribedTo[c.bare] {
			probe = append(probe, s)
		}
	}
	r.mu.Unlock()
	sort.Strings(to)
	sort.Strings(probe)
	for _, t := range to {
		r.send(st, st.From, t)
	}
	for _, p := range probe {
		if pr, err := s2s.ParseStanza([]byte(fmt.Sprintf(`<presence xmlns='jabber:server' from='%s' to='%s' type='probe'/>`, escape(c.bare), escape(p)))); err == nil {
			r.route(pr)
		}
	}
	for _, o := range others {
		r.send(o, o.From, c.full.String())
	}
}

// send routes a copy of st with a new envelope.
func (r *router) send(st s2s.Stanza, from, to string) {
	cp, err := st.Readdress(from, to)
	if err != nil {
		r.log.Warn("cannot readdress", "from", from, "to", to, "err", err)
		return
	}
	r.route(cp)
}

// outboundSubscription handles a subscription request or answer from a
// session (RFC 6121 §3): stamped with the bare JID, recorded, sent on.
func (r *router) outboundSubscription(c *client, st s2s.Stanza) {
	contact, err := bareOf(st.To)
	if err != nil {
		r.reply(st, stanza.JIDMalformed, fmt.Sprintf("%q is not a valid address", st.To))
		return
	}
	var current []s2s.Stanza
	r.mu.Lock()
	switch st.Type {
	case "subscribed":
		set(r.subscribers, c.bare, contact, true)
		for _, o := range r.sessionsLocked(c.bare) {
			if o.available {
				current = append(current, o.presence)
			}
		}
	case "unsubscribed":
		set(r.subscribers, c.bare, contact, false)
	case "unsubscribe":
		set(r.subscribedTo, c.bare, contact, false)
		set(r.asked, c.bare, contact, false)
	case "subscribe":
		if !r.subscribedTo[c.bare][contact] {
			set(r.asked, c.bare, contact, true)
		}
	}
	r.mu.Unlock()
	r.send(st, c.bare, contact)
	// §3.1.5: once subscribed, the contact gets the user's presence.
	for _, p := range current {
		r.send(p, p.From, contact)
	}
}

// inboundPresence delivers presence to a local account's sessions,
// recording subscription answers and answering probes (RFC 6121 §3, §4.3).
func (r *router) inboundPresence(st s2s.Stanza, bare, resource string) {
	from, err := bareOf(st.From)
	if err != nil && (isSubscription(st.Type) || st.Type == "probe") {
		r.log.Debug("subscription presence without a sender dropped", "to", st.To, "type", st.Type)
		return
	}
	r.mu.Lock()
	switch st.Type {
	case "subscribed":
		if !r.asked[bare][from] {
			// An approval nobody asked for (or a repeat): RFC 6121
			// §3.1.6 says to ignore it.
			r.mu.Unlock()
			r.log.Debug("unrequested subscription approval dropped", "from", st.From, "to", st.To)
			return
		}
		set(r.asked, bare, from, false)
		set(r.subscribedTo, bare, from, true)
	case "unsubscribed":
		set(r.asked, bare, from, false)
		set(r.subscribedTo, bare, from, false)
	case "unsubscribe":
		set(r.subscribers, bare, from, false)
	case "probe":
		var current []s2s.Stanza
		if r.subscribers[bare][from] {
			for _, o := range r.sessionsLocked(bare) {
				if o.available {
					current = append(current, o.presence)
				}
			}
		}
		r.mu.Unlock()
		for _, p := range current {
			r.send(p, p.From, st.From)
		}
		return
	}
	var targets []*client
	if c := r.sessions[bare][resource]; resource != "" && c != nil && !isSubscription(st.Type) {
		targets = []*client{c}
	} else if resource == "" || isSubscription(st.Type) {
		targets = r.sessionsLocked(bare)
	}
	r.mu.Unlock()
	if len(targets) == 0 {
		// RFC 6121 lets a server without storage drop presence for an
		// offline user; a subscription request is then lost, and says so.
		r.log.Info("presence for an offline user dropped", "from", st.From, "to", st.To, "type", st.Type)
		return
	}
	for _, c := range targets {
		r.deliver(c, st)
	}
}

func set(m map[string]map[string]bool, user, contact string, on bool) {
	if on {
		if m[user] == nil {
			m[user] = make(map[string]bool)
		}
		m[user][contact] = true
		return
	}
	delete(m[user], contact)
	if len(m[user]) == 0 {
		delete(m, user)
	}
}

func bareOf(address string) (string, error) {
	j, err := jid.Parse(address)
	if err != nil {
		return "", err
	}
	d, err := s2s.NormalizeDomain(j.Domainpart())
	if err != nil {
		return "", err
	}
	if j.Localpart() == "" {
		return d, nil
	}
	return j.Localpart() + "@" + d, nil
}

// toServer answers stanzas for one of the server's domains: disco#info and
// ping (XEP-0030, XEP-0199); anything else that expects an answer gets
// service-unavailable (RFC 6120 §8.4).
func (r *router) toServer(st s2s.Stanza) {
	switch st.Name {
	case "presence":
		return
	case "message":
		r.reply(st, stanza.ServiceUnavailable, "the server takes no messages")
		return
	}
	if st.Type != "get" && st.Type != "set" {
		return
	}
	switch payload(st) {
	case xml.Name{Space: nsDiscoInfo, Local: "query"}:
		if st.Type == "get" {
			r.result(st, `<query xmlns='`+nsDiscoInfo+`'><identity category='server' type='im' name='federation example server'/>`+
				`<feature var='`+nsDiscoInfo+`'/><feature var='`+nsPing+`'/></query>`)
			return
		}
	case xml.Name{Space: nsPing, Local: "ping"}:
		if st.Type == "get" {
			r.result(st, "")
			return
		}
	}
	r.reply(st, stanza.ServiceUnavailable, "")
}

// accountIQ answers an iq for a user's bare JID on the user's behalf
// (RFC 6121 §8.5.3.1): disco#info and ping for anyone, the roster for the
// user.
func (r *router) accountIQ(st s2s.Stanza, bare string) {
	if st.Type != "get" && st.Type != "set" {
		return
	}
	own := false
	if from, err := bareOf(st.From); err == nil && from == bare {
		own = true
	}
	switch payload(st) {
	case xml.Name{Space: nsDiscoInfo, Local: "query"}:
		if st.Type == "get" {
			r.result(st, `<query xmlns='`+nsDiscoInfo+`'><identity category='account' type='registered'/>`+
				`<feature var='`+nsDiscoInfo+`'/><feature var='`+nsPing+`'/></query>`)
			return
		}
	case xml.Name{Space: nsPing, Local: "ping"}:
		if st.Type == "get" {
			r.result(st, "")
			return
		}
	case xml.Name{Space: nsRoster, Local: "query"}:
		if !own {
			r.reply(st, stanza.Forbidden, "")
			return
		}
		if st.Type == "set" {
			// Roster items live only as subscriptions here; a client's
			// edits (names, groups) are acknowledged and not kept.
			r.result(st, "")
			return
		}
		r.result(st, r.roster(bare))
		return
	}
	r.reply(st, stanza.ServiceUnavailable, "")
}

// roster builds the user's roster from the subscriptions in memory.
func (r *router) roster(bare string) string {
	r.mu.Lock()
	items := make(map[string]string)
	for c := range r.subscribedTo[bare] {
		items[c] = "to"
	}
	for c := range r.subscribers[bare] {
		if items[c] == "to" {
			items[c] = "both"
		} else {
			items[c] = "from"
		}
	}
	r.mu.Unlock()
	names := make([]string, 0, len(items))
	for c := range items {
		names = append(names, c)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(`<query xmlns='` + nsRoster + `'>`)
	for _, c := range names {
		fmt.Fprintf(&b, `<item jid='%s' subscription='%s'/>`, escape(c), items[c])
	}
	b.WriteString(`</query>`)
	return b.String()
}

// result answers an iq with type='result' and payload.
func (r *router) result(st s2s.Stanza, payload string) {
	raw := fmt.Sprintf(`<iq xmlns='jabber:server' type='result' from='%s' to='%s' id='%s'>%s</iq>`,
		escape(st.To), escape(st.From), escape(st.ID), payload)
	if st.To == "" {
		raw = fmt.Sprintf(`<iq xmlns='jabber:server' type='result' to='%s' id='%s'>%s</iq>`, escape(st.From), escape(st.ID), payload)
	}
	res, err := s2s.ParseStanza([]byte(raw))
	if err != nil {
		r.log.Error("building a result", "err", err)
		return
	}
	r.route(res)
}

// payload returns the name of an iq's first child element.
func payload(st s2s.Stanza) xml.Name {
	d := xml.NewDecoder(bytes.NewReader(st.Raw))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 1 {
				return t.Name
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
