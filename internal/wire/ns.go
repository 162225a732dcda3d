package wire

// Namespaces of the s2s stream layer (RFC 6120 §4.8, XEP-0220).
const (
	// NSServer is the default namespace of s2s streams and of every Raw
	// the Reader returns.
	NSServer = "jabber:server"
	// NSClient is the c2s content namespace; ParseStanza rewrites it.
	NSClient = "jabber:client"
	// NSStream is the namespace of <stream:stream>, <stream:features> and
	// <stream:error>.
	NSStream = "http://etherx.jabber.org/streams"
	// NSDialback is the namespace of <db:result> and <db:verify>.
	NSDialback = "jabber:server:dialback"

	nsXML = "http://www.w3.org/XML/1998/namespace"
)
