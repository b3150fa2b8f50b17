package mastodonenv

import (
	"net"
	"strconv"
	"strings"
)

// Listen is where the streaming server accepts connections.
type Listen struct {
	// Network is "tcp" or "unix".
	Network string
	// Address is host:port for "tcp" (host "" means all interfaces) or the
	// socket path for "unix"; Mastodon chmods the socket to 0666 after
	// listening, which is the caller's job.
	Address string
}

// Listen defaults from streaming/index.js.
const (
	defaultPort = "4000"
	defaultBind = "127.0.0.1"
)

// ListenFromEnv reads SOCKET, PORT and BIND like streaming/index.js:
//
//   - SOCKET, if non-empty, is a UNIX socket path and PORT/BIND are ignored.
//   - PORT defaults to 4000 when unset or empty. Node converts it with
//     unary + and would try to listen on NaN for garbage; here anything but
//     a decimal number in 0..65535 (surrounding white space allowed) is the
//     error "Invalid PORT environment variable: <v>".
//   - BIND defaults to 127.0.0.1 only when unset (Node uses ??), so an empty
//     BIND means all interfaces; "[addr]" has its brackets stripped.
func ListenFromEnv(env Env) (Listen, error) {
	if socket := env.Get("SOCKET"); socket != "" {
		return Listen{Network: "unix", Address: socket}, nil
	}
	port := defaultPort
	if v := env.Get("PORT"); v != "" {
		n, err := strconv.Atoi(strings.TrimFunc(v, isJSSpace))
		if err != nil || n < 0 || n > 65535 {
			return Listen{}, invalidEnv("PORT", v)
		}
		port = strconv.Itoa(n)
	}
	bind, ok := env("BIND")
	if !ok {
		bind = defaultBind
	}
	if len(bind) >= 2 && bind[0] == '[' && bind[len(bind)-1] == ']' {
		bind = bind[1 : len(bind)-1]
	}
	return Listen{Network: "tcp", Address: net.JoinHostPort(bind, port)}, nil
}
