package s2s

import "mellium.im/xmpp/stanza"

// ErrorReply returns the error stanza that answers s (RFC 6120 §8.3): the
// same kind of stanza, from and to swapped, the same id, type='error' and an
// <error/> with the condition, its type (wait for remote-server-timeout and
// resource-constraint, cancel otherwise) and text, if not empty. Its
// envelope is filled in, so the host routes it by To like any other stanza:
// to the local sender of a bounced stanza (Bounce.Stanza), or back through
// SendStanza to the remote sender of a delivered one the host cannot take
// (a stanza for a user it does not have).
//
// ok is false for a stanza of type error, which must never be answered with
// another error (RFC 6120 §8.3.1).
func (s Stanza) ErrorReply(cond stanza.Condition, text string) (reply Stanza, ok bool) {
	raw := Bounce{Stanza: s, Condition: cond, Text: text}.Reply()
	if raw == nil {
		return Stanza{}, false
	}
	return Stanza{Name: s.Name, From: s.To, To: s.From, ID: s.ID, Type: "error", Raw: raw}, true
}
