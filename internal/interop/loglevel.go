package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
)

// The interop tests read the peers' debug logs to see what crossed the
// wire. A benchmark must not pay for that: Prosody and ejabberd as
// deployed log at info, and a debug line per stanza would measure the
// logger. These switch a running instance's level without a restart.

// SetLogLevel sets the level of Prosody's log ("debug", "info", "warn",
// "error") and reloads the configuration through the admin shell, which
// returns once the new logging is in place.
func (p *Prosody) SetLogLevel(ctx context.Context, level string) error {
	cfg, err := os.ReadFile(p.cfgPath)
	if err != nil {
		return fmt.Errorf("interop: prosody log level: %w", err)
	}
	// The harness writes the log line itself, with "debug"; see write.
	old := []byte(`levels = { min = "debug" }`)
	if !bytes.Contains(cfg, old) {
		return fmt.Errorf("interop: prosody log level: no %s in %s", old, p.cfgPath)
	}
	cfg = bytes.Replace(cfg, old, []byte(`levels = { min = `+quoted(level)+` }`), 1)
	if err := os.WriteFile(p.cfgPath, cfg, 0o644); err != nil {
		return fmt.Errorf("interop: prosody log level: %w", err)
	}
	if out, err := p.Shell(ctx, "config", "reload"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// SetLogLevel sets ejabberd's log level ("debug", "info", "warning",
// "error", …) with ejabberdctl set_loglevel.
func (e *Ejabberd) SetLogLevel(ctx context.Context, level string) error {
	if out, err := e.Ctl(ctx, "set_loglevel", level); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}
