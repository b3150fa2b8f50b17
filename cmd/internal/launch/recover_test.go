package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/testenv"
)

// stoppable runs Broker or Edge like command, but may be stopped before the
// test ends (stop waits for it to return, and checks it returned nil).
func stoppable(t *testing.T, main func(context.Context, []string, mastodonenv.Env, io.Writer, io.Writer) error, args []string, env map[string]string) (*logBuffer, func()) {
	t.Helper()
	out := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- main(ctx, args, mastodonenv.MapEnv(env), out, out) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s returned %v", args[0], err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop", args[0])
		}
	})
	t.Cleanup(stop)
	return out, stop
}

// homeKey is the subscribed: key of alice's home timeline, which an edge
// serving alice's user stream needs.
func homeKey(ns string) string {
	return fmt.Sprintf("%s:subscribed:timeline:%d", ns, testenv.Alice)
}

// awaitKey waits until key exists in rdb and returns how long that took.
func awaitKey(t *testing.T, rdb *redis.Client, key string) time.Duration {
	t.Helper()
	start := time.Now()
	testenv.Eventually(t, 20*time.Second, func() error {
		n, err := rdb.Exists(context.Background(), key).Result()
		if err != nil || n == 0 {
			return fmt.Errorf("%s missing (%v)", key, err)
		}
		return nil
	})
	return time.Since(start)
}

// splitEdge starts an edge on natsURL with one SSE client on alice's user
// stream, and waits for the broker to have written her home key.
func splitEdge(t *testing.T, rdb *redis.Client, ns, natsURL string, extra map[string]string) {
	t.Helper()
	env := baseEnv(t, ns)
	env["STREAMING_NATS_URL"] = natsURL
	for k, v := range extra {
		env[k] = v
	}
	log := command(t, Edge, []string{"edge", "-mastodon-root", t.TempDir()}, env)
	addr := log.await(t, listeningRe)
	openSSE(t, addr, "/api/v1/streaming/user", testenv.AliceReadToken)
	awaitKey(t, rdb, homeKey(ns))
}

// A broker that restarts has forgotten what the edges serve. With the
// embedded NATS server the edges reconnect to the new one; the keys Rails
// checks (deleted here while the broker is down, as if they had expired or
// Redis had lost them) must come back within seconds, not at the edges'
// next periodic refresh minutes later.
func TestKeysRebuiltAfterBrokerRestartEmbeddedNATS(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	benv := baseEnv(t, ns)
	benv["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
	blog, stopBroker := stoppable(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	natsURL := blog.await(t, natsRe)
	splitEdge(t, rdb, ns, natsURL, nil)

	stopBroker()
	if err := rdb.Del(context.Background(), homeKey(ns)).Err(); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	benv["STREAMING_NATS_LISTEN"] = u.Host
	start := time.Now()
	command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	awaitKey(t, rdb, homeKey(ns))
	t.Logf("key back %v after the new broker was started", time.Since(start).Round(time.Millisecond))
}

// With an external NATS server the edges stay connected while the broker
// restarts: the new broker must ask them for their interest.
func TestKeysRebuiltAfterBrokerRestartExternalNATS(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	natsURL := testenv.NATSServer(t)
	benv := baseEnv(t, ns)
	benv["STREAMING_NATS_URL"] = natsURL
	_, stopBroker := stoppable(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	splitEdge(t, rdb, ns, natsURL, nil)

	stopBroker()
	if err := rdb.Del(context.Background(), homeKey(ns)).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	awaitKey(t, rdb, homeKey(ns))
	t.Logf("key back %v after the new broker was started", time.Since(start).Round(time.Millisecond))
}

// A Redis restart loses every key (this Redis keeps nothing on disk); the
// broker, which stays up, must write them all again once Redis is back.
func TestKeysRebuiltAfterRedisRestart(t *testing.T) {
	srv := startPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	ns := "spillwaytest"
	benv := baseEnv(t, ns)
	benv["REDIS_URL"] = "redis://" + srv.addr
	benv["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
	blog := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	splitEdge(t, rdb, ns, blog.await(t, natsRe), nil)

	// A key nobody rewrites shows that the restart lost everything.
	ctx := context.Background()
	if err := rdb.Set(ctx, ns+":marker", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.kill(t)
	srv.start(t)
	start := time.Now()
	if n, err := rdb.Exists(ctx, ns+":marker").Result(); err != nil || n != 0 {
		t.Fatalf("restarted Redis kept its keys (%d, %v)", n, err)
	}
	awaitKey(t, rdb, homeKey(ns))
	t.Logf("key back %v after Redis answered again", time.Since(start).Round(time.Millisecond))
}

// privateRedis is a redis-server process of the test's own, on a free
// port, that the test may kill and start again (the shared Redis must
// never be restarted).
type privateRedis struct {
	bin  string
	addr string
	dir  string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &privateRedis{bin: bin, addr: addr, dir: t.TempDir()}
	r.start(t)
	t.Cleanup(func() { r.kill(t) })
	return r
}

// start runs redis-server on r.addr, without persistence, and waits until
// it answers.
func (r *privateRedis) start(t *testing.T) {
	t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command(r.bin, "--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--loglevel", "warning")
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	probe := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: time.Second})
	defer probe.Close()
	testenv.Eventually(t, 10*time.Second, func() error {
		return probe.Ping(context.Background()).Err()
	})
}

// kill ends the process at once (SIGKILL), as a crash would.
func (r *privateRedis) kill(t *testing.T) {
	t.Helper()
	if r.cmd == nil {
		return
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Logf("kill redis-server: %v", err)
	}
	_ = r.cmd.Wait()
	r.cmd = nil
}
