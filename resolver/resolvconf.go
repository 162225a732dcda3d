package resolver

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
)

// resolvConfPath is where New reads the system's nameservers from.
const resolvConfPath = "/etc/resolv.conf"

// defaultNameservers are used when resolv.conf is missing or lists none,
// as the C library and Go's own resolver do.
var defaultNameservers = []string{"127.0.0.1:53", "[::1]:53"}

// readResolvConf returns the nameservers of the resolv.conf file at path,
// or defaultNameservers when the file does not exist or names none.
func readResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return defaultNameservers, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	servers, err := parseResolvConf(f)
	if err != nil {
		return nil, err
	}
	if len(servers) == 0 {
		return defaultNameservers, nil
	}
	return servers, nil
}

// parseResolvConf reads the "nameserver" lines of resolv.conf(5) and returns
// them as "ip:53". Only nameservers are taken: "search" and "ndots" do not
// apply because s2s domains are always fully qualified, and the "timeout" and
// "attempts" options are replaced by dns.timeout and dns.retries, which must
// mean the same on every host. Unparseable addresses are skipped, as the C
// library does.
func parseResolvConf(r io.Reader) ([]string, error) {
	var servers []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		servers = append(servers, net.JoinHostPort(addr.String(), "53"))
	}
	return servers, sc.Err()
}
