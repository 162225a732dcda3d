package domain

import (
	"strconv"
	"unicode/utf8"
)

// ClipLen is how many bytes of a peer's string Clip keeps.
const ClipLen = 64

// Clip quotes s for a log line, an error or an event, keeping at most
// ClipLen bytes of it and saying how long it was. Names and other strings a
// peer chose can be as long as a stanza; copying them whole into every log
// line and error would let a peer make us hold and write megabytes.
func Clip(s string) string {
	if len(s) <= ClipLen {
		return strconv.Quote(s)
	}
	cut := ClipLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// ClipText shortens a message that may quote a peer's string (IDNA's
// errors quote the label they refuse, a decoder's errors the token it
// refuses) to about twice ClipLen, for a log line or a stream error's text.
func ClipText(s string) string {
	if len(s) <= 2*ClipLen {
		return s
	}
	cut := 2 * ClipLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
