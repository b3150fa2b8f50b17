package bus

import (
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/shared/channel"
)

// Credentials identify a NATS client. At most one way is set: a Token, a
// User with a Password, a CredsFile (a user JWT with its NKey seed, for
// servers in operator mode) or an NKeySeedFile (a file holding an NKey
// user seed).
type Credentials struct {
	User, Password string
	Token          string
	CredsFile      string
	NKeySeedFile   string
}

// IsZero reports whether no credentials are set.
func (c Credentials) IsZero() bool { return c == Credentials{} }

// validate checks that one way is set, completely; forServer restricts the
// ways to those the embedded server can check itself.
func (c Credentials) validate(forServer bool) error {
	n := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.CredsFile != "", c.NKeySeedFile != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("set only one of a token, a user and password, a creds file or an NKey seed file")
	case (c.User == "") != (c.Password == ""):
		return errors.New("a user needs a password, and a password a user")
	case forServer && (c.CredsFile != "" || c.NKeySeedFile != ""):
		return errors.New("the embedded server checks a token or a user and password; creds and NKey seed files are for clients of an external server")
	}
	return nil
}

// TLSFiles are PEM files for TLS. A server uses CertFile and KeyFile as its
// certificate and, with VerifyClients, CAFile to verify client
// certificates; a client uses CAFile to verify the server and CertFile and
// KeyFile as its client certificate.
type TLSFiles struct {
	CAFile            string
	CertFile, KeyFile string
	VerifyClients     bool
}

// server sets up TLS on an embedded server's options.
func (f TLSFiles) server(opts *server.Options) error {
	if f.CertFile == "" && f.KeyFile == "" {
		if f.VerifyClients || f.CAFile != "" {
			return errors.New("bus: verifying client certificates needs a server certificate and key")
		}
		return nil
	}
	if f.CertFile == "" || f.KeyFile == "" {
		return errors.New("bus: TLS needs both a certificate and its key")
	}
	if f.VerifyClients && f.CAFile == "" {
		return errors.New("bus: verifying client certificates needs the CA that signs them")
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: f.CertFile,
		KeyFile:  f.KeyFile,
		CaFile:   f.CAFile,
		Verify:   f.VerifyClients,
	})
	if err != nil {
		return fmt.Errorf("bus: nats server TLS: %w", err)
	}
	opts.TLSConfig = tc
	opts.TLS = true
	opts.TLSVerify = f.VerifyClients
	opts.TLSTimeout = tlsTimeout.Seconds()
	return nil
}

// tlsTimeout bounds the embedded server's TLS handshakes; nats-server's
// default, 0.5 s, is short for a loaded host.
const tlsTimeout = 2 * time.Second

// options turns a ClientConfig's credentials and TLS files into nats.go
// options, reading every file now so that a wrong path stops the process
// at start rather than in the reconnect loop.
func (cfg ClientConfig) options() ([]nats.Option, error) {
	c := cfg.Credentials
	if err := c.validate(false); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.CredsFile != "":
		if _, err := os.ReadFile(c.CredsFile); err != nil {
			return nil, fmt.Errorf("creds file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("NKey seed file: %w", err)
		}
		opts = append(opts, opt)
	}
	f := cfg.TLS
	if f.CAFile != "" {
		if err := checkCA(f.CAFile); err != nil {
			return nil, err
		}
		// RootCAs and ClientCert read their files again on every
		// reconnect, so renewed certificates are picked up.
		opts = append(opts, nats.RootCAs(f.CAFile))
	}
	if f.CertFile != "" || f.KeyFile != "" {
		if f.CertFile == "" || f.KeyFile == "" {
			return nil, errors.New("a client certificate needs both the certificate and its key")
		}
		if _, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile); err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		opts = append(opts, nats.ClientCert(f.CertFile, f.KeyFile))
	}
	return opts, nil
}

func checkCA(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("CA file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return nil
}

// internalUser is the name the process's own in-process connections log
// in with; its password is random, made at start and never leaves memory.
const internalUser = "spillway-internal"

// edgeUser is the name edges appear under in the server's logs when they
// present no user name of their own.
const edgeUser = "edge"

// authenticator admits the internal user with every right, and edges with
// edgePermissions when they present the configured credentials (any client,
// when none are configured).
type authenticator struct {
	secret string
	edges  Credentials
	perms  *server.Permissions
}

// Check implements server.Authentication.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o.Username == internalUser {
		if !equal(o.Password, a.secret) {
			return false
		}
		c.RegisterUser(&server.User{Username: internalUser})
		return true
	}
	switch {
	case a.edges.Token != "":
		if !equal(o.Token, a.edges.Token) {
			return false
		}
	case a.edges.User != "":
		// Both compared, so that timing does not tell which was wrong.
		user, pass := equal(o.Username, a.edges.User), equal(o.Password, a.edges.Password)
		if !user || !pass {
			return false
		}
	}
	name := a.edges.User
	if name == "" {
		name = edgeUser
	}
	c.RegisterUser(&server.User{Username: name, Permissions: a.perms})
	return true
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// edgePermissions is least privilege for an edge: receive events (and the
// broker's resync requests) and announce interest. Publishing events,
// reading interest and asking for resyncs are the broker's alone.
func edgePermissions(s channel.Subjects) *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{s.Interest()}},
		Subscribe: &server.SubjectPermission{Allow: []string{s.Timelines(), s.Resync()}},
	}
}
