// Package config reads MongooseIM's [s2s] configuration section from TOML
// into typed, validated values with every default filled in.
//
// Parse and Load accept the document the way an operator keeps it: a whole
// server configuration, of which only the s2s table is read, or a document
// holding just the section's keys. Option names and meanings are
// MongooseIM's, so an existing section can be pasted unchanged:
//
//	[s2s]
//	  default_policy = "deny"
//	  host_policy = [{host = "good.example", policy = "allow"}]
//	  use_starttls = "required_trusted"
//	  certfile = "s2s.pem"
//	  outgoing.connection_timeout = "infinity"
//
// Durations become [time.Duration]: max_retry_delay and dns.timeout are
// seconds, outgoing.connection_timeout is milliseconds or "infinity" (zero).
// Hosts in host_policy and address are normalised to lower-case A-labels
// without a trailing dot, the form every package of the module compares, and
// each may appear once. The certificate file is checked when the section is
// parsed, so a broken file stops a reload instead of the first TLS handshake.
//
// Anything the section does not allow is an [*Error] naming the file, line,
// column and key path, and saying what is allowed:
//
//	s2s.toml:4:16: s2s.use_starttls: unknown mode "requird" (want "false", "optional", "required" or "required_trusted")
//
// The package checks values, it does not act on them: the policy, starttls,
// dialback and resolver packages and the s2s Manager take the fields they
// need from an [S2S]. It imports none of them.
package config
