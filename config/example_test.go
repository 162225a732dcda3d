package config_test

import (
	"errors"
	"fmt"

	"github.com/xmpp-s2s/federation/config"
)

func ExampleParse() {
	c, err := config.Parse("mongooseim.toml", []byte(`
[general]
  hosts = ["localhost"]

[s2s]
  default_policy = "deny"
  host_policy = [{host = "Good.Example.", policy = "allow"}]
  outgoing.connection_timeout = "infinity"
  dns.retries = 3
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.DefaultPolicy, c.HostPolicy, c.UseStartTLS)
	fmt.Println(c.Outgoing.Port, c.Outgoing.IPVersions, c.Outgoing.ConnectionTimeout)
	fmt.Println(c.DNS.Timeout, c.DNS.Retries, c.MaxRetryDelay, len(c.Shared))
	// Output:
	// deny [{good.example allow}] false
	// 5269 [4 6] 0s
	// 10s 3 5m0s 20
}

func ExampleError() {
	_, err := config.Parse("s2s.toml", []byte(`
default_policy = "deny"
use_starttls = "requird"
`[1:]))
	fmt.Println(err)

	var e *config.Error
	if errors.As(err, &e) {
		fmt.Println(e.Line, e.Column, e.Key, errors.Is(err, config.ErrValue))
	}
	// Output:
	// s2s.toml:2:16: s2s.use_starttls: unknown mode "requird" (want "false", "optional", "required" or "required_trusted")
	// 2 16 s2s.use_starttls true
}
