package interop

import (
	"context"
	"log/slog"
	"testing"
)

// testLogger sends the Manager's logs to t.Log, so that a failing test shows
// our side of the story next to the peer's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(tlogHandler{t: t})
}

type tlogHandler struct {
	t     *testing.T
	attrs []slog.Attr
}

func (h tlogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h tlogHandler) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	for _, a := range h.attrs {
		line += " " + a.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	h.t.Log(line)
	return nil
}

func (h tlogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], as...)
	return h
}

func (h tlogHandler) WithGroup(string) slog.Handler { return h }
