package launch

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/mastodonenv"
)

// natsVariables lists the NATS security variables, for Variables.
var natsVariables = []struct{ Name, Default, Help string }{
	{"STREAMING_NATS_USER", "unset", "NATS user name, with STREAMING_NATS_PASSWORD. Edge, or broker with STREAMING_NATS_URL: presented to NATS. Broker embedding NATS (and all-in-one with STREAMING_NATS_LISTEN): what edges must present."},
	{"STREAMING_NATS_PASSWORD", "unset", "NATS password for STREAMING_NATS_USER."},
	{"STREAMING_NATS_TOKEN", "unset", "NATS token, instead of a user and password; presented or required like STREAMING_NATS_USER."},
	{"STREAMING_NATS_CREDS", "unset", "NATS client only (edge, broker with STREAMING_NATS_URL): a .creds file (user JWT and NKey seed) for a server in operator mode."},
	{"STREAMING_NATS_NKEY_SEED_FILE", "unset", "NATS client only: a file holding an NKey user seed."},
	{"STREAMING_NATS_TLS_CERT", "unset", "PEM certificate, with STREAMING_NATS_TLS_KEY. Embedded NATS: the server's (its listener then speaks TLS only). Client: a client certificate."},
	{"STREAMING_NATS_TLS_KEY", "unset", "PEM private key of STREAMING_NATS_TLS_CERT."},
	{"STREAMING_NATS_TLS_CA", "unset", "PEM CA certificate(s). Client: verify the NATS server with them (else the system's roots for tls:// URLs). Embedded NATS: verify client certificates with them."},
	{"STREAMING_NATS_TLS_VERIFY_CLIENTS", "false", "Embedded NATS: require a client certificate signed by STREAMING_NATS_TLS_CA."},
	{"STREAMING_NATS_ALLOW_ANONYMOUS", "false", "Embedded NATS: start even though it listens beyond loopback without credentials (anyone who reaches it reads every timeline)."},
}

// NATSAuth is how NATS connections are authenticated and encrypted
// (STREAMING_NATS_USER and the other variables of natsVariables).
type NATSAuth struct {
	Credentials    bus.Credentials
	TLS            bus.TLSFiles
	AllowAnonymous bool
}

// natsAuthFromEnv reads and checks the variables that mean the same on a
// server and a client; embedNATS and dialNATS check the rest.
func natsAuthFromEnv(env mastodonenv.Env) (NATSAuth, error) {
	a := NATSAuth{
		Credentials: bus.Credentials{
			User:         env.Get("STREAMING_NATS_USER"),
			Password:     env.Get("STREAMING_NATS_PASSWORD"),
			Token:        env.Get("STREAMING_NATS_TOKEN"),
			CredsFile:    env.Get("STREAMING_NATS_CREDS"),
			NKeySeedFile: env.Get("STREAMING_NATS_NKEY_SEED_FILE"),
		},
		TLS: bus.TLSFiles{
			CAFile:   env.Get("STREAMING_NATS_TLS_CA"),
			CertFile: env.Get("STREAMING_NATS_TLS_CERT"),
			KeyFile:  env.Get("STREAMING_NATS_TLS_KEY"),
		},
	}
	c := a.Credentials
	if (c.User == "") != (c.Password == "") {
		return NATSAuth{}, errors.New("invalid STREAMING_NATS_USER/STREAMING_NATS_PASSWORD environment variables: set both or neither")
	}
	ways := 0
	for _, set := range []bool{c.User != "", c.Token != "", c.CredsFile != "", c.NKeySeedFile != ""} {
		if set {
			ways++
		}
	}
	if ways > 1 {
		return NATSAuth{}, errors.New("invalid NATS credentials: set only one of STREAMING_NATS_USER/STREAMING_NATS_PASSWORD, STREAMING_NATS_TOKEN, STREAMING_NATS_CREDS and STREAMING_NATS_NKEY_SEED_FILE")
	}
	if (a.TLS.CertFile == "") != (a.TLS.KeyFile == "") {
		return NATSAuth{}, errors.New("invalid STREAMING_NATS_TLS_CERT/STREAMING_NATS_TLS_KEY environment variables: set both or neither")
	}
	var err error
	if a.TLS.VerifyClients, err = boolVar(env, "STREAMING_NATS_TLS_VERIFY_CLIENTS"); err != nil {
		return NATSAuth{}, err
	}
	if a.AllowAnonymous, err = boolVar(env, "STREAMING_NATS_ALLOW_ANONYMOUS"); err != nil {
		return NATSAuth{}, err
	}
	return a, nil
}

func boolVar(env mastodonenv.Env, name string) (bool, error) {
	v := env.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("invalid %s environment variable: %q is not true or false", name, v)
	}
	return b, nil
}

// embedNATS starts the embedded NATS server of an all-in-one edge on
// listen ("" = in-process connections only). All-in-one processes take no
// broker lease, so their servers are never clustered.
func embedNATS(s Settings, listen string, logger *slog.Logger) (*bus.Server, error) {
	if s.clustered() {
		return nil, errors.New("STREAMING_NATS_CLUSTER_LISTEN, STREAMING_NATS_ROUTES and STREAMING_NATS_CLUSTER_USER are for brokers in split mode: each all-in-one process publishes everything to its own clients")
	}
	return startEmbeddedNATS(s, listen, bus.ClusterConfig{}, logger)
}

// startEmbeddedNATS starts the embedded NATS server of a broker or an
// all-in-one edge on listen ("" = in-process connections only), with
// routes to other brokers' servers when cluster.Listen is set. Edges must
// present the configured credentials; a server that would let anyone in
// beyond loopback starts only with STREAMING_NATS_ALLOW_ANONYMOUS.
func startEmbeddedNATS(s Settings, listen string, cluster bus.ClusterConfig, logger *slog.Logger) (*bus.Server, error) {
	a := s.NATSAuth
	switch {
	case a.Credentials.CredsFile != "":
		return nil, errors.New("STREAMING_NATS_CREDS is for NATS clients (edges, a broker with STREAMING_NATS_URL); the embedded NATS server checks STREAMING_NATS_USER/STREAMING_NATS_PASSWORD or STREAMING_NATS_TOKEN")
	case a.Credentials.NKeySeedFile != "":
		return nil, errors.New("STREAMING_NATS_NKEY_SEED_FILE is for NATS clients (edges, a broker with STREAMING_NATS_URL); the embedded NATS server checks STREAMING_NATS_USER/STREAMING_NATS_PASSWORD or STREAMING_NATS_TOKEN")
	case a.TLS.VerifyClients && a.TLS.CertFile == "":
		return nil, errors.New("STREAMING_NATS_TLS_VERIFY_CLIENTS needs the server's STREAMING_NATS_TLS_CERT and STREAMING_NATS_TLS_KEY")
	case a.TLS.VerifyClients && a.TLS.CAFile == "":
		return nil, errors.New("STREAMING_NATS_TLS_VERIFY_CLIENTS needs STREAMING_NATS_TLS_CA, the CA that signs client certificates")
	case a.TLS.CAFile != "" && a.TLS.CertFile == "":
		return nil, errors.New("STREAMING_NATS_TLS_CA on an embedded NATS server verifies client certificates: it needs STREAMING_NATS_TLS_CERT, STREAMING_NATS_TLS_KEY and STREAMING_NATS_TLS_VERIFY_CLIENTS=true")
	}
	anonymous := a.Credentials.IsZero() && !a.TLS.VerifyClients
	if listen != "" && anonymous && !loopbackOnly(listen) {
		if !a.AllowAnonymous {
			return nil, fmt.Errorf("embedded NATS on STREAMING_NATS_LISTEN=%s would let anyone who reaches it read every timeline and inject events: "+
				"set STREAMING_NATS_USER and STREAMING_NATS_PASSWORD (or STREAMING_NATS_TOKEN) here and on the edges, "+
				"or require client certificates (STREAMING_NATS_TLS_VERIFY_CLIENTS=true), "+
				"or set STREAMING_NATS_ALLOW_ANONYMOUS=true if the network already keeps everyone else out", listen)
		}
		logger.Warn("embedded NATS accepts edges without credentials beyond loopback (STREAMING_NATS_ALLOW_ANONYMOUS=true)", "listen", listen)
	}
	srv, err := bus.StartServer(bus.ServerConfig{
		Listen:   listen,
		Subjects: s.Subjects,
		Edges:    a.Credentials,
		TLS:      a.TLS,
		Cluster:  cluster,
		Logger:   logger,
	})
	if err != nil {
		if cluster.Listen != "" {
			return nil, fmt.Errorf("embedded NATS (STREAMING_NATS_LISTEN=%q, STREAMING_NATS_CLUSTER_LISTEN=%q): %w", listen, cluster.Listen, err)
		}
		return nil, fmt.Errorf("embedded NATS (STREAMING_NATS_LISTEN=%q): %w", listen, err)
	}
	return srv, nil
}

// loopbackOnly reports whether a host:port listens on loopback only.
func loopbackOnly(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dialNATS connects to the NATS server(s) at url with the configured
// credentials and TLS.
func dialNATS(s Settings, url, name string, logger *slog.Logger) (*nats.Conn, error) {
	nc, err := bus.Connect(bus.ClientConfig{
		URL:         url,
		Name:        name,
		Credentials: s.NATSAuth.Credentials,
		TLS:         s.NATSAuth.TLS,
		Logger:      logger,
	})
	if err != nil {
		return nil, fmt.Errorf("NATS at %s (STREAMING_NATS_*): %w", redactURL(url), err)
	}
	return nc, nil
}

// redactURL hides credentials written into NATS URLs (nats://user:pass@…,
// nats://token@…).
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)"
		case u.User != nil:
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
