package launch

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/spillway/spillway/broker"
	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/readiness"
)

// defaultBrokerLease is STREAMING_BROKER_LEASE's default: a crashed leader
// is replaced within about this long, and a leader may miss two renewals
// (a Redis failover, a long pause) without losing the lease.
const defaultBrokerLease = 3 * time.Second

// clusterVariables lists the variables of a broker pair's embedded NATS
// cluster, for Variables.
var clusterVariables = []struct{ Name, Default, Help string }{
	{"STREAMING_NATS_CLUSTER_LISTEN", "unset", "Broker embedding NATS: listen on this host:port for routes from the other brokers' embedded servers, joining them in one NATS cluster, so that an edge connected to any broker receives every event."},
	{"STREAMING_NATS_ROUTES", "unset", "Broker embedding NATS: route URLs of the other brokers' servers, comma-separated (nats://broker-2:6222); a route to itself is ignored, so every broker may get the same list."},
	{"STREAMING_NATS_CLUSTER_USER", "unset", "Broker embedding NATS: user name that routes between brokers present and require, with STREAMING_NATS_CLUSTER_PASSWORD; it must differ from the edges' credentials (a route may do anything)."},
	{"STREAMING_NATS_CLUSTER_PASSWORD", "unset", "Password of STREAMING_NATS_CLUSTER_USER."},
}

// loadFailover reads the lease and cluster variables into s.
func loadFailover(env mastodonenv.Env, s *Settings) error {
	var err error
	if s.BrokerLease, err = durationVar(env, "STREAMING_BROKER_LEASE", defaultBrokerLease); err != nil {
		return err
	}
	if s.BrokerLeaseRenew, err = durationVar(env, "STREAMING_BROKER_LEASE_RENEW", s.BrokerLease/3); err != nil {
		return err
	}
	if s.BrokerLease > 0 {
		switch {
		case s.BrokerLease < 100*time.Millisecond:
			return fmt.Errorf("invalid STREAMING_BROKER_LEASE environment variable: %v is too short (100ms at least; 0 turns the lease off)", s.BrokerLease)
		case s.BrokerLeaseRenew <= 0 || s.BrokerLeaseRenew >= s.BrokerLease:
			return fmt.Errorf("invalid STREAMING_BROKER_LEASE_RENEW environment variable: %v must be positive and shorter than STREAMING_BROKER_LEASE (%v)", s.BrokerLeaseRenew, s.BrokerLease)
		}
	}
	c := &s.NATSCluster
	c.Listen = env.Get("STREAMING_NATS_CLUSTER_LISTEN")
	for r := range strings.SplitSeq(env.Get("STREAMING_NATS_ROUTES"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.Routes = append(c.Routes, r)
		}
	}
	c.User, c.Password = env.Get("STREAMING_NATS_CLUSTER_USER"), env.Get("STREAMING_NATS_CLUSTER_PASSWORD")
	if (c.User == "") != (c.Password == "") {
		return errors.New("invalid STREAMING_NATS_CLUSTER_USER/STREAMING_NATS_CLUSTER_PASSWORD environment variables: set both or neither")
	}
	return nil
}

// clustered reports whether any cluster variable is set.
func (s Settings) clustered() bool {
	c := s.NATSCluster
	return c.Listen != "" || len(c.Routes) > 0 || c.User != ""
}

// leaseConfig is the broker's lease from the settings; changed is told of
// each change of role.
func (s Settings) leaseConfig(changed func(broker.Leadership)) broker.LeaseConfig {
	if s.BrokerLease == 0 {
		return broker.LeaseConfig{}
	}
	return broker.LeaseConfig{TTL: s.BrokerLease, Renew: s.BrokerLeaseRenew, Changed: changed}
}

// checkCluster refuses cluster settings that would not work or would let
// strangers in: routes may publish and read anything.
func checkCluster(s Settings, embedded bool) error {
	if !s.clustered() {
		return nil
	}
	c := s.NATSCluster
	switch {
	case !embedded:
		return errors.New("STREAMING_NATS_CLUSTER_LISTEN, STREAMING_NATS_ROUTES and STREAMING_NATS_CLUSTER_USER join brokers' embedded NATS servers; with STREAMING_NATS_URL the external NATS cluster routes itself: unset them")
	case c.Listen == "":
		return errors.New("STREAMING_NATS_ROUTES and STREAMING_NATS_CLUSTER_USER need STREAMING_NATS_CLUSTER_LISTEN, where the other brokers' routes connect")
	case c.User == "" && !loopbackOnly(c.Listen) && !s.NATSAuth.AllowAnonymous:
		return fmt.Errorf("NATS routes on STREAMING_NATS_CLUSTER_LISTEN=%s would let anyone who reaches it read every timeline and inject events: "+
			"set STREAMING_NATS_CLUSTER_USER and STREAMING_NATS_CLUSTER_PASSWORD on every broker, "+
			"or STREAMING_NATS_ALLOW_ANONYMOUS=true if the network already keeps everyone else out", c.Listen)
	case c.User != "" && edgeCanRoute(s.NATSAuth.Credentials, c):
		return errors.New("STREAMING_NATS_CLUSTER_PASSWORD equals the edges' NATS password or token: an edge could then join as a route, with every right; give routes credentials of their own")
	case s.NATSAuth.TLS.CertFile != "" && s.NATSAuth.TLS.CAFile == "":
		return errors.New("with STREAMING_NATS_TLS_CERT, routes between brokers speak TLS with that certificate and verify each other: set STREAMING_NATS_TLS_CA to the CA that signs the brokers' certificates")
	}
	return nil
}

func edgeCanRoute(edges bus.Credentials, c bus.ClusterConfig) bool {
	return c.Password == edges.Password || c.Password == edges.Token
}

// embedBrokerNATS starts a broker's embedded NATS server, joined to the
// other brokers' when the cluster variables say so.
func embedBrokerNATS(s Settings, listen string, logger *slog.Logger) (*bus.Server, error) {
	if err := checkCluster(s, true); err != nil {
		return nil, err
	}
	return startEmbeddedNATS(s, listen, s.NATSCluster, logger)
}

// warnUnclusteredStandby returns the lease's change hook for a broker whose
// embedded NATS server has no routes: as standby it publishes nothing, so
// its own edges would receive nothing.
func warnUnclusteredStandby(logger *slog.Logger) func(broker.Leadership) {
	return func(l broker.Leadership) {
		if l.Role == "standby" {
			logger.Warn("this broker is standby but its embedded NATS server has no routes to the leader's: "+
				"while another broker leads, edges connected to this one receive no events; set STREAMING_NATS_CLUSTER_LISTEN and STREAMING_NATS_ROUTES on every broker, "+
				"or point every broker at one external NATS cluster (STREAMING_NATS_URL). "+
				"(A broker alone is standby only briefly, after a crash, until its previous run's lease expires.)", "holder", l.Holder)
		}
	}
}

// brokerReady answers the broker's /readyz: its dependencies, its role
// and, with a lease, what it knows of it.
type brokerReady struct {
	deps  *readiness.Set
	lease func() (broker.Leadership, bool)
}

func (h brokerReady) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		readiness.Report
		// Role is "leader" (publishing events) or "standby".
		Role  string             `json:"role"`
		Lease *broker.Leadership `json:"lease,omitempty"`
	}{Report: h.deps.Report(), Role: "leader"}
	if h.lease != nil {
		if l, ok := h.lease(); ok {
			l.Since = l.Since.UTC().Truncate(time.Millisecond)
			out.Role, out.Lease = l.Role, &l
		}
	}
	readiness.WriteJSON(w, out.Ready, out)
}
