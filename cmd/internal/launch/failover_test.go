package launch

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/testenv"
)

const (
	leaderMsg  = "broker became leader: it publishes events"
	standbyMsg = "broker is standby: events are received but another broker publishes them"
	// failoverEvery is the pause between two events of the steady stream.
	failoverEvery = 10 * time.Millisecond
)

var (
	leaderRe      = regexp.MustCompile(`"msg":"(` + leaderMsg + `)"`)
	standbyRe     = regexp.MustCompile(`"msg":"(` + standbyMsg + `)"`)
	routeCreds    = map[string]string{"STREAMING_NATS_CLUSTER_USER": "route", "STREAMING_NATS_CLUSTER_PASSWORD": "route secret"}
	edgeNATSCreds = sharedCreds
)

// Killing the leading broker, while events flow at a steady rate, loses
// only the events of the moments before the standby takes over: with the
// brokers' embedded NATS servers clustered and with an external NATS
// server; the leader stopped (its context cancelled: it releases the
// lease) and really killed (SIGKILL: its lease must expire). Nothing is
// delivered twice and alice's `subscribed:` key never lapses. Each run
// logs what it measured (go test -v -run TestBrokerFailover).
func TestBrokerFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the broker and runs four failovers")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bin := t.TempDir() + "/spillway-broker"
	if out, err := exec.Command(goTool, "build", "-o", bin, "../../broker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, external := range []bool{false, true} {
		for _, sigkill := range []bool{false, true} {
			name := map[bool]string{false: "embedded cluster", true: "external NATS"}[external] + ", " +
				map[bool]string{false: "stopped", true: "SIGKILL"}[sigkill]
			t.Run(name, func(t *testing.T) { brokerFailover(t, bin, external, sigkill) })
		}
	}
}

func brokerFailover(t *testing.T, bin string, external, sigkill bool) {
	rdb, ns := testenv.Redis(t)
	envA, envB := baseEnv(t, ns), baseEnv(t, ns)
	var edgeEnv map[string]string
	if external {
		url := testenv.NATSServer(t)
		envA["STREAMING_NATS_URL"], envB["STREAMING_NATS_URL"] = url, url
	} else {
		// Every broker gets the same route list, itself included.
		pa, pb := freePort(t), freePort(t)
		routes := "nats://" + pa + ",nats://" + pb
		for _, b := range []struct {
			env    map[string]string
			listen string
		}{{envA, pa}, {envB, pb}} {
			maps.Copy(b.env, routeCreds)
			maps.Copy(b.env, edgeNATSCreds)
			b.env["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
			b.env["STREAMING_NATS_CLUSTER_LISTEN"] = b.listen
			b.env["STREAMING_NATS_ROUTES"] = routes
		}
		edgeEnv = edgeNATSCreds
	}
	envB["STREAMING_BROKER_HTTP_LISTEN"] = "127.0.0.1:0"
	args := []string{"broker", "-mastodon-root", t.TempDir()}

	// a starts alone, so it leads; b stands by.
	var alog *logBuffer
	var killA func()
	if sigkill {
		alog, killA = brokerProcess(t, bin, envA)
	} else {
		alog, killA = stoppable(t, Broker, args, envA)
	}
	alog.await(t, leaderRe)
	blog := command(t, Broker, args, envB)
	blog.await(t, standbyRe)
	bHTTP := blog.await(t, brokerHTTPRe)
	if role := brokerRole(t, bHTTP); role != "standby" {
		t.Fatalf("standby's /readyz role %q", role)
	}

	// Edge 1 lists both brokers' servers (it may be on either), edge 2
	// only the standby's, so it gets the leader's events over the route.
	urls := []string{envA["STREAMING_NATS_URL"], envB["STREAMING_NATS_URL"]}
	if !external {
		a, b := alog.await(t, natsRe), blog.await(t, natsRe)
		urls = []string{a + "," + b, b}
	}
	var clients []*eventLog
	var edgeLogs []*logBuffer
	for _, url := range urls {
		env := baseEnv(t, ns)
		maps.Copy(env, edgeEnv)
		env["STREAMING_NATS_URL"] = url
		elog := command(t, Edge, []string{"edge", "-mastodon-root", t.TempDir()}, env)
		edgeLogs = append(edgeLogs, elog)
		clients = append(clients, recordEvents(openSSE(t, elog.await(t, listeningRe), "/api/v1/streaming/user", testenv.AliceReadToken)))
	}
	awaitKey(t, rdb, homeKey(ns))
	waitPatternSubscribed(t, rdb, ns)
	ctx := context.Background()
	home := fmt.Sprintf("%s:timeline:%d", ns, testenv.Alice)
	for i, c := range clients {
		testenv.Eventually(t, 10*time.Second, func() error {
			rdb.Publish(ctx, home, `{"event":"delete","payload":"probe"}`)
			if !c.sawProbe() {
				return fmt.Errorf("client %d not subscribed yet", i)
			}
			return nil
		})
	}

	keys := watchKeyTTL(t, rdb, homeKey(ns))
	pub := publishSteadily(t, rdb, home)
	for _, c := range clients {
		c.awaitSeq(t, 50)
	}
	killed := time.Now()
	killA()
	blog.await(t, leaderRe)
	// Delivery resumes; a moment's more events show it is steady again.
	resumeFrom := pub.count()
	for _, c := range clients {
		c.awaitSeq(t, resumeFrom+50)
	}
	last := pub.stop()
	for _, c := range clients {
		c.awaitSeq(t, last)
	}
	keys.stop(t)
	if role := brokerRole(t, bHTTP); role != "leader" {
		t.Errorf("new leader's /readyz role %q", role)
	}

	elected := logTime(t, blog, leaderMsg).Sub(killed)
	for i, c := range clients {
		lost, dup := c.check(last)
		if dup > 0 {
			t.Errorf("client %d received %d events twice", i, dup)
		}
		where := "on the standby's NATS server"
		switch {
		case external:
			where = "on the external NATS server"
		case strings.Contains(edgeLogs[i].String(), `"msg":"nats lost"`):
			where = "on the killed broker's NATS server, reconnected"
		}
		resumed := time.Duration(0)
		if len(lost) > 0 {
			first, lastLost := pub.at(lost[0]).Sub(killed), pub.at(lost[len(lost)-1]).Sub(killed)
			resumed = pub.at(lost[len(lost)-1] + 1).Sub(killed)
			// Only events around the kill are lost: none published well
			// before it, none once the new leader and the edges have
			// settled.
			if first < -time.Second || lastLost > elected+5*time.Second {
				t.Errorf("client %d lost events published from %v to %v after the kill (leader elected after %v)", i, first, lastLost, elected)
			}
		}
		t.Logf("client %d (%s): %d of %d events lost (one every %v), delivery resumed %v after the kill; new leader elected after %v",
			i+1, where, len(lost), last, failoverEvery, resumed.Round(time.Millisecond), elected.Round(time.Millisecond))
	}
	t.Logf("alice's subscribed: key: lowest TTL seen %v, never missing", keys.min.Round(time.Second))
}

// freePort returns a 127.0.0.1 address that was free a moment ago, for a
// route listener that every broker's route list must name in advance.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// brokerProcess runs the built broker binary with exactly env; kill sends
// it SIGKILL (also at the end of the test).
func brokerProcess(t *testing.T, bin string, env map[string]string) (*logBuffer, func()) {
	t.Helper()
	cmd := exec.Command(bin, "-mastodon-root", t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := sync.OnceFunc(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	t.Cleanup(kill)
	return out, kill
}

// brokerRole reads the role a broker's /readyz reports.
func brokerRole(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Role  string `json:"role"`
		Lease struct {
			Role string `json:"role"`
		} `json:"lease"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Role != r.Lease.Role {
		t.Errorf("/readyz role %q, lease role %q", r.Role, r.Lease.Role)
	}
	return r.Role
}

// logTime is the time of the first JSON log line with message msg.
func logTime(t *testing.T, log *logBuffer, msg string) time.Time {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == msg {
			return line.Time
		}
	}
	t.Fatalf("no %q in log", msg)
	return time.Time{}
}

// steadyPublisher publishes delete events numbered 1, 2, ... on a channel
// every failoverEvery, recording when each was published.
type steadyPublisher struct {
	done chan struct{}
	quit chan struct{}
	mu   sync.Mutex
	sent []time.Time // sent[i]: event i+1
}

func publishSteadily(t *testing.T, rdb *redis.Client, channel string) *steadyPublisher {
	p := &steadyPublisher{done: make(chan struct{}), quit: make(chan struct{})}
	// Ends with stop (also at the end of the test).
	go func() {
		defer close(p.done)
		tick := time.NewTicker(failoverEvery)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-tick.C:
			}
			p.mu.Lock()
			seq := len(p.sent) + 1
			p.sent = append(p.sent, time.Now())
			p.mu.Unlock()
			if err := rdb.Publish(context.Background(), channel, `{"event":"delete","payload":"`+strconv.Itoa(seq)+`"}`).Err(); err != nil {
				t.Errorf("publish %d: %v", seq, err)
			}
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *steadyPublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

func (p *steadyPublisher) at(seq int) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[seq-1]
}

// stop ends publishing and returns the number of the last event.
func (p *steadyPublisher) stop() int {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	return p.count()
}

// eventLog records the numbered delete events one client receives.
type eventLog struct {
	mu    sync.Mutex
	probe bool
	got   map[int]int // event number → times received
}

// recordEvents reads s until it ends (when the test's cleanup closes it).
func recordEvents(s *sseStream) *eventLog {
	l := &eventLog{got: make(map[int]int)}
	events := sseEvents(s)
	go func() {
		for ev := range events {
			data, ok := strings.CutPrefix(ev, "event: delete\ndata: ")
			if !ok {
				continue
			}
			data = strings.TrimSpace(data)
			l.mu.Lock()
			if n, err := strconv.Atoi(data); err == nil {
				l.got[n]++
			} else if data == "probe" {
				l.probe = true
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *eventLog) sawProbe() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.probe
}

func (l *eventLog) awaitSeq(t *testing.T, seq int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.got[seq] == 0 {
			return fmt.Errorf("event %d not received", seq)
		}
		return nil
	})
}

// check returns the events of 1..last never received and how many were
// received more than once.
func (l *eventLog) check(last int) (lost []int, dup int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 1; i <= last; i++ {
		switch n := l.got[i]; {
		case n == 0:
			lost = append(lost, i)
		case n > 1:
			dup++
		}
	}
	return lost, dup
}

// keyWatch polls a key's TTL, recording the lowest and whether it was ever
// missing.
type keyWatch struct {
	quit, done chan struct{}
	min        time.Duration
	missing    error
}

func watchKeyTTL(t *testing.T, rdb *redis.Client, key string) *keyWatch {
	w := &keyWatch{quit: make(chan struct{}), done: make(chan struct{}), min: time.Duration(1 << 62)}
	// Ends with stop.
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
			ttl, err := rdb.PTTL(context.Background(), key).Result()
			switch {
			case err != nil:
				w.missing = err
			case ttl < 0:
				w.missing = fmt.Errorf("%s missing or without expiry (PTTL %v)", key, ttl)
			default:
				w.min = min(w.min, ttl)
			}
		}
	}()
	t.Cleanup(func() { w.stop(nil) })
	return w
}

// stop ends the watch and fails t if the key was ever missing.
func (w *keyWatch) stop(t *testing.T) {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
	if t != nil && w.missing != nil {
		t.Errorf("subscribed: key lapsed: %v", w.missing)
	}
}

// Two brokers whose embedded servers are joined by TLS routes: an edge
// that reaches only the standby's server, over TLS with its credentials,
// receives what the leader publishes.
func TestBrokerPairTLSRoutes(t *testing.T) {
	pki := newTestPKI(t)
	rdb, ns := testenv.Redis(t)
	pa, pb := freePort(t), freePort(t)
	var logs []*logBuffer
	for _, listen := range []string{pa, pb} {
		env := baseEnv(t, ns)
		maps.Copy(env, routeCreds)
		maps.Copy(env, edgeNATSCreds)
		maps.Copy(env, map[string]string{
			"STREAMING_NATS_LISTEN":         "127.0.0.1:-1",
			"STREAMING_NATS_CLUSTER_LISTEN": listen,
			"STREAMING_NATS_ROUTES":         "nats://" + pa + ",nats://" + pb,
			"STREAMING_NATS_TLS_CERT":       pki.brokerCert,
			"STREAMING_NATS_TLS_KEY":        pki.brokerKey,
			"STREAMING_NATS_TLS_CA":         pki.ca,
		})
		log := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, env)
		if len(logs) == 0 {
			log.await(t, leaderRe)
		} else {
			log.await(t, standbyRe)
		}
		logs = append(logs, log)
	}
	env := baseEnv(t, ns)
	maps.Copy(env, edgeNATSCreds)
	env["STREAMING_NATS_URL"] = logs[1].await(t, natsAnyRe)
	env["STREAMING_NATS_TLS_CA"] = pki.ca
	if !strings.HasPrefix(env["STREAMING_NATS_URL"], "tls://") {
		t.Fatalf("standby announces %s", env["STREAMING_NATS_URL"])
	}
	elog := command(t, Edge, []string{"edge", "-mastodon-root", t.TempDir()}, env)
	sse := openSSE(t, elog.await(t, listeningRe), "/api/v1/streaming/user", testenv.AliceReadToken)
	awaitKey(t, rdb, homeKey(ns))
	waitPatternSubscribed(t, rdb, ns)
	// The edge's subscription reaches the leader's server over the route
	// asynchronously.
	events := recordEvents(sse)
	testenv.Eventually(t, 10*time.Second, func() error {
		rdb.Publish(context.Background(), fmt.Sprintf("%s:timeline:%d", ns, testenv.Alice), `{"event":"delete","payload":"probe"}`)
		if !events.sawProbe() {
			return fmt.Errorf("nothing across the TLS route yet")
		}
		return nil
	})

	// A server that does not speak TLS on its routes is not let in, even
	// with the route credentials.
	plain := baseEnv(t, ns)
	maps.Copy(plain, routeCreds)
	maps.Copy(plain, map[string]string{
		"STREAMING_NATS_LISTEN":         "127.0.0.1:-1",
		"STREAMING_NATS_CLUSTER_LISTEN": "127.0.0.1:-1",
		"STREAMING_NATS_ROUTES":         "nats://" + pa,
	})
	command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, plain)
	logs[0].await(t, regexp.MustCompile(`(TLS route handshake error)`))
}

// Failover settings that cannot work, or would let strangers route into
// NATS, stop the broker at start naming the variables.
func TestFailoverSettingsErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"lease not a duration", map[string]string{"STREAMING_BROKER_LEASE": "long"}, "STREAMING_BROKER_LEASE"},
		{"lease too short", map[string]string{"STREAMING_BROKER_LEASE": "10ms"}, "too short"},
		{"renew not shorter", map[string]string{"STREAMING_BROKER_LEASE": "2s", "STREAMING_BROKER_LEASE_RENEW": "2s"}, "STREAMING_BROKER_LEASE_RENEW"},
		{"route user without password", map[string]string{"STREAMING_NATS_CLUSTER_USER": "route"}, "STREAMING_NATS_CLUSTER_PASSWORD"},
		{"routes without listener", map[string]string{"STREAMING_NATS_ROUTES": "nats://b:6222"}, "need STREAMING_NATS_CLUSTER_LISTEN"},
		{"anonymous routes beyond loopback", map[string]string{"STREAMING_NATS_CLUSTER_LISTEN": "0.0.0.0:0"}, "STREAMING_NATS_CLUSTER_USER"},
		{"routes with the edges' password", map[string]string{
			"STREAMING_NATS_CLUSTER_LISTEN": "127.0.0.1:0", "STREAMING_NATS_CLUSTER_USER": "route", "STREAMING_NATS_CLUSTER_PASSWORD": "pw",
			"STREAMING_NATS_USER": "edge", "STREAMING_NATS_PASSWORD": "pw"}, "credentials of their own"},
		{"TLS routes without CA", map[string]string{
			"STREAMING_NATS_CLUSTER_LISTEN": "127.0.0.1:0", "STREAMING_NATS_TLS_CERT": "c.pem", "STREAMING_NATS_TLS_KEY": "k.pem"}, "STREAMING_NATS_TLS_CA"},
		{"cluster with external NATS", map[string]string{"STREAMING_NATS_URL": "nats://127.0.0.1:1", "STREAMING_NATS_CLUSTER_LISTEN": "127.0.0.1:0"}, "with STREAMING_NATS_URL"},
		{"bad route", map[string]string{"STREAMING_NATS_CLUSTER_LISTEN": "127.0.0.1:0", "STREAMING_NATS_ROUTES": "http://b:6222"}, "STREAMING_NATS_CLUSTER_LISTEN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ns := testenv.Redis(t)
			env := baseEnv(t, ns)
			env["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
			maps.Copy(env, tc.env)
			var out strings.Builder
			err := Broker(context.Background(), []string{"broker", "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(env), &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
	// All-in-one processes each publish everything: no cluster for them.
	env := baseEnv(t, "x")
	env["STREAMING_NATS_CLUSTER_LISTEN"] = "127.0.0.1:0"
	var out strings.Builder
	err := Edge(context.Background(), []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(env), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "split mode") {
		t.Fatalf("all-in-one with a cluster: %v", err)
	}
}

// A second broker whose embedded NATS server has no routes would serve its
// edges nothing while standby: it says so. A broker without a lease always
// leads.
func TestUnclusteredStandbyWarns(t *testing.T) {
	_, ns := testenv.Redis(t)
	env := baseEnv(t, ns)
	env["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
	command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, env).await(t, leaderRe)
	second := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, env)
	second.await(t, regexp.MustCompile(`"msg":"(this broker is standby but its embedded NATS server has no routes)`))

	env["STREAMING_BROKER_LEASE"] = "0"
	env["STREAMING_BROKER_HTTP_LISTEN"] = "127.0.0.1:0"
	alone := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, env)
	resp, err := http.Get("http://" + alone.await(t, brokerHTTPRe) + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if _, lease := r["lease"]; r["role"] != "leader" || lease {
		t.Fatalf("/readyz of a broker without lease: %v", r)
	}
	if strings.Contains(alone.String(), leaderMsg) {
		t.Fatal("a broker without lease logged a leadership change")
	}
}

// The broker's -help lists the lease and cluster variables.
func TestHelpListsFailoverVariables(t *testing.T) {
	var out strings.Builder
	_ = Broker(context.Background(), []string{"broker", "-help"}, mastodonenv.MapEnv(nil), &out, &out)
	for _, name := range []string{"STREAMING_BROKER_LEASE", "STREAMING_BROKER_LEASE_RENEW", "STREAMING_NATS_CLUSTER_LISTEN", "STREAMING_NATS_ROUTES", "STREAMING_NATS_CLUSTER_USER", "STREAMING_NATS_CLUSTER_PASSWORD"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("help lacks %s", name)
		}
	}
}
