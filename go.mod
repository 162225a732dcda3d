module github.com/xmpp-s2s/federation

go 1.26.8

require (
	golang.org/x/net v0.62.0
	mellium.im/xmpp v0.22.0
)

require (
	golang.org/x/text v0.43.0 // indirect
	mellium.im/reader v0.1.0 // indirect
	mellium.im/xmlstream v0.15.4 // indirect
)
