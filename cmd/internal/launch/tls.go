package launch

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// certificate is the edge's TLS certificate, read from STREAMING_TLS_CERT
// and STREAMING_TLS_KEY at start and again on each reload (SIGHUP). A
// reload that fails keeps the certificate in use, so a renewal caught half
// written never takes the edge down; connections already open keep theirs
// either way.
type certificate struct {
	certFile, keyFile string
	logger            *slog.Logger
	cur               atomic.Pointer[tls.Certificate]
}

// loadCertificate reads the pair, failing with both variables named.
func loadCertificate(certFile, keyFile string, logger *slog.Logger) (*certificate, error) {
	pair, err := readCertificate(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c := &certificate{certFile: certFile, keyFile: keyFile, logger: logger}
	c.cur.Store(pair)
	c.logLoaded("TLS certificate loaded: serving HTTPS (HTTP/2 and HTTP/1.1)", pair)
	return c, nil
}

// readCertificate reads a certificate chain and its key from PEM files.
func readCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("STREAMING_TLS_CERT %s, STREAMING_TLS_KEY: %w", certFile, err)
	}
	return &pair, nil
}

// reload reads the files again and serves the new certificate to new
// connections; on failure it logs why and keeps the old one.
func (c *certificate) reload() {
	pair, err := readCertificate(c.certFile, c.keyFile)
	if err != nil {
		c.logger.Error("TLS certificate not reloaded; still serving the previous one", "err", err)
		return
	}
	c.cur.Store(pair)
	c.logLoaded("TLS certificate reloaded", pair)
}

func (c *certificate) logLoaded(msg string, pair *tls.Certificate) {
	leaf := pair.Leaf
	level := slog.LevelInfo
	if time.Now().After(leaf.NotAfter) {
		level, msg = slog.LevelWarn, msg+"; it has expired, clients will refuse it"
	}
	c.logger.Log(context.Background(), level, msg, "cert", c.certFile, "names", certNames(pair), "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
}

// certNames lists the names a certificate is valid for.
func certNames(pair *tls.Certificate) string {
	leaf := pair.Leaf
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = append(names, leaf.Subject.CommonName)
	}
	return strings.Join(names, ",")
}

// tlsConfig is the edge's server configuration: the certificate current
// at each handshake.
func (c *certificate) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil },
	}
}

// reloadOnHangup reloads c (nil without TLS) on each SIGHUP until stop is
// called, which returns once its goroutine has. SIGHUP never stops the
// edge, so that a reload (systemd's ExecReload) is safe with or without
// TLS.
func reloadOnHangup(c *certificate, logger *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		// Owner: the edge command; exits on stop.
		defer close(exited)
		for {
			select {
			case <-hup:
				if c == nil {
					logger.Info("SIGHUP: nothing to reload (STREAMING_TLS_CERT is not set)")
					continue
				}
				c.reload()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-exited
	}
}

// describeTLS summarises the edge's TLS settings for -check-config.
func describeTLS(s Settings) string {
	if s.TLSCert == "" {
		return "off: plain HTTP/1.1"
	}
	return "HTTPS (HTTP/2 and HTTP/1.1), certificate " + s.TLSCert
}

// checkTLS reads the certificate as the edge would.
func checkTLS(r *report, s Settings) {
	pair, err := readCertificate(s.TLSCert, s.TLSKey)
	if err != nil {
		r.fail("tls", err)
		return
	}
	leaf := pair.Leaf
	detail := fmt.Sprintf("certificate for %s, issued by %s, valid until %s", certNames(pair), leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	switch now := time.Now(); {
	case now.After(leaf.NotAfter):
		r.fail("tls", fmt.Errorf("%s: it has expired", detail))
	case now.Before(leaf.NotBefore):
		r.fail("tls", fmt.Errorf("%s: not valid before %s", detail, leaf.NotBefore.UTC().Format(time.RFC3339)))
	case now.Add(14 * 24 * time.Hour).After(leaf.NotAfter):
		r.warn("tls", detail+": expires within 14 days")
	default:
		r.ok("tls", detail)
	}
}
