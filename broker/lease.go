package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/channel"
)

// LeaseConfig lets several brokers share one Mastodon: they all receive
// every Redis message and keep the `subscribed:` keys alive, but only the
// holder of a lease in Redis publishes events; the others are hot standbys
// that take the lease over when it is released or expires.
type LeaseConfig struct {
	// TTL is how long the lease lasts unless renewed: the longest a
	// crashed holder keeps the others from publishing. Zero means no
	// lease: the broker always publishes (run exactly one).
	TTL time.Duration
	// Renew is how often the holder renews the lease and a standby tries
	// to take it. Default TTL/3; it must be shorter than TTL.
	Renew time.Duration
	// Key is the lease's Redis key. Default
	// "<Namespace>:spillway:broker:<subject prefix>:leader".
	Key string
	// ID names this broker in the key's value, which must differ between
	// brokers. Default host:pid:random.
	ID string
	// Changed, if set, is called after each change of role or of the
	// holder seen, from the lease's goroutine; it must not block.
	Changed func(Leadership)
}

// LeaseKey is the default lease key of brokers for REDIS_NAMESPACE
// namespace publishing under subjects: one lease per Mastodon and per
// subject prefix.
func LeaseKey(namespace string, subjects channel.Subjects) string {
	p := subjects.Prefix
	if p == "" {
		p = channel.DefaultPrefix
	}
	if namespace != "" {
		namespace += ":"
	}
	return namespace + "spillway:broker:" + p + ":leader"
}

// Leadership is what a broker knows of its lease, for readiness reports.
type Leadership struct {
	// Role is "leader" while this broker publishes, else "standby".
	Role string `json:"role"`
	// ID is this broker's name in the lease.
	ID string `json:"id"`
	// Holder is who held the lease at the latest answer from Redis ("":
	// nobody, or no answer yet).
	Holder string `json:"holder,omitempty"`
	// Key is the lease's Redis key.
	Key string `json:"key"`
	// Since is when this broker last became leader or standby.
	Since time.Time `json:"since"`
}

// leaseScript takes the lease when it is free and renews it when it is
// ours, in one step; otherwise it returns how long the holder's lease has
// left and who the holder is.
var leaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1}
end
return {0, redis.call('PTTL', KEYS[1]), v}
`)

// releaseScript deletes the lease while it is still ours and announces it
// on the channel of the same name, so that a standby takes over at once
// rather than at its next attempt.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

// lease holds or waits for the broker lease. held is read on the publish
// path; everything else belongs to the run goroutine.
type lease struct {
	key, id    string
	ttl, renew time.Duration
	rdb        redis.UniversalClient
	logger     *slog.Logger
	changes    prometheus.Counter
	changed    func(Leadership) // never nil

	// epoch is the origin of from and until: durations since it come from
	// the monotonic clock, which wall-clock steps do not move.
	epoch time.Time
	// This broker may publish while from <= now < until (nanoseconds
	// since epoch); until is 0 while it is standby.
	from, until atomic.Int64

	// Owned by run.
	leading    bool          // the latest answer said the lease is ours
	otherUntil time.Duration // earliest expiry of another holder's lease as last seen; 0 = none seen
	lastErr    string        // latest attempt error, logged once per change

	mu    sync.Mutex
	state Leadership // guarded by mu
}

func newLease(cfg LeaseConfig, rdb redis.UniversalClient, logger *slog.Logger) (*lease, error) {
	if cfg.Renew == 0 {
		cfg.Renew = cfg.TTL / 3
	}
	switch {
	case cfg.TTL < 10*time.Millisecond:
		return nil, fmt.Errorf("broker: lease TTL %v is too short (10ms at least)", cfg.TTL)
	case cfg.Renew <= 0 || cfg.Renew >= cfg.TTL:
		return nil, fmt.Errorf("broker: lease renewal interval %v must be positive and shorter than the lease TTL %v", cfg.Renew, cfg.TTL)
	case cfg.Key == "":
		return nil, errors.New("broker: lease key is required")
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = host + ":" + strconv.Itoa(os.Getpid()) + ":" + rand.Text()[:8]
	}
	l := &lease{
		key:     cfg.Key,
		id:      cfg.ID,
		ttl:     cfg.TTL,
		renew:   cfg.Renew,
		rdb:     rdb,
		logger:  logger.With("lease", cfg.Key, "id", cfg.ID),
		epoch:   time.Now(),
		changed: cfg.Changed,
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spillway_broker_leadership_changes_total",
			Help: "Times this broker became leader or stopped being leader.",
		}),
	}
	if l.changed == nil {
		l.changed = func(Leadership) {}
	}
	l.state = Leadership{Role: "standby", ID: cfg.ID, Key: cfg.Key, Since: time.Now()}
	return l, nil
}

// held reports whether this broker may publish now. It costs a clock read
// and two atomic loads.
func (l *lease) held() bool {
	now := int64(time.Since(l.epoch))
	// until first: from is stored before until when the lease is taken.
	return now < l.until.Load() && now >= l.from.Load()
}

// leadership reports the lease's state.
func (l *lease) leadership() Leadership {
	l.mu.Lock()
	s := l.state
	l.mu.Unlock()
	if l.held() {
		s.Role = "leader"
	} else {
		s.Role = "standby"
	}
	return s
}

// run takes, renews and waits for the lease until ctx is done, then
// releases it if it is ours. first is when to make the next attempt after
// the one the caller made.
func (l *lease) run(ctx context.Context, first time.Duration) {
	// The channel lives as long as ps, closed on return.
	ps := l.rdb.Subscribe(ctx, l.key)
	defer ps.Close()
	released := ps.Channel()
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			l.release()
			return
		case m := <-released:
			if m != nil && m.Payload != l.id {
				// A holder that let go has stopped publishing:
				// nothing to wait out.
				l.otherUntil = 0
			}
		case <-timer.C:
		}
		next := l.attempt(ctx)
		if ctx.Err() == nil {
			timer.Reset(next)
		}
	}
}

// attempt runs leaseScript once and returns when to run it again.
func (l *lease) attempt(ctx context.Context) time.Duration {
	actx, cancel := context.WithTimeout(ctx, l.renew)
	defer cancel()
	sent := time.Since(l.epoch)
	res, err := leaseScript.Run(actx, l.rdb, []string{l.key}, l.id, l.ttl.Milliseconds()).Slice()
	got := time.Since(l.epoch)
	if err == nil && (len(res) == 0 || (res[0] != int64(1) && len(res) != 3)) {
		err = fmt.Errorf("unexpected lease script answer %v", res)
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		if msg := err.Error(); msg != l.lastErr {
			l.lastErr = msg
			attrs := []any{"err", err}
			if strings.HasPrefix(msg, "NOPERM") {
				attrs = append(attrs, "hint", "the lease needs the Redis commands EVALSHA, EVAL and PUBLISH")
			}
			l.logger.Warn("broker lease could not be checked; retrying", attrs...)
		}
		// The lease runs out by itself (held turns false at until);
		// here it is only logged and counted.
		if l.leading && !l.held() {
			l.become(false, "", "the lease expired before it could be renewed", slog.LevelWarn, slog.Any("err", err))
		}
		return l.renew
	}
	if l.lastErr != "" {
		l.lastErr = ""
		l.logger.Info("broker lease answered again")
	}
	if res[0] == int64(1) {
		// The key expires ttl after Redis ran the script, which is after
		// sent: stopping a tenth earlier leaves room for the time between
		// checking held and the message leaving, and for clock rates.
		until := sent + l.ttl - l.ttl/10
		if !l.leading {
			from := got
			wait := time.Duration(0)
			if got < l.otherUntil {
				// The previous holder's lease vanished before its time
				// (Redis restarted or was flushed): that broker may
				// still publish until its own lease runs out.
				wait = l.ttl
				from = got + wait
			}
			l.otherUntil = 0
			l.from.Store(int64(from))
			l.until.Store(int64(until))
			attrs := []any{}
			if wait > 0 {
				attrs = append(attrs, "publishing_in", wait.String())
			}
			l.become(true, l.id, "", slog.LevelInfo, attrs...)
			return l.renew
		}
		l.until.Store(int64(until))
		return l.renew
	}
	holder, _ := res[2].(string)
	pttl, _ := res[1].(int64)
	l.until.Store(0)
	next := l.renew
	switch {
	case pttl >= 0:
		l.otherUntil = sent + time.Duration(pttl)*time.Millisecond
		// Try again just after it expires, if that is sooner.
		next = min(next, time.Duration(pttl+1)*time.Millisecond)
	default:
		// A key without expiry: not a lease this code wrote.
		l.otherUntil = got + l.ttl
	}
	if l.leading {
		l.become(false, holder, "another broker holds the lease", slog.LevelWarn)
	} else if l.state.Holder != holder {
		l.mu.Lock()
		l.state.Holder = holder
		l.mu.Unlock()
		l.logger.Info("broker is standby: events are received but another broker publishes them", "holder", holder)
		l.changed(l.leadership())
	}
	return next
}

// become records and logs a change of role: one line per change.
func (l *lease) become(leader bool, holder, reason string, level slog.Level, attrs ...any) {
	l.leading = leader
	l.changes.Inc()
	l.mu.Lock()
	l.state.Holder = holder
	l.state.Since = time.Now()
	l.mu.Unlock()
	if leader {
		l.logger.Log(context.Background(), level, "broker became leader: it publishes events", attrs...)
	} else {
		attrs = append(attrs, "reason", reason)
		if holder != "" {
			attrs = append(attrs, "holder", holder)
		}
		l.logger.Log(context.Background(), level, "broker became standby: it no longer publishes events", attrs...)
	}
	l.changed(l.leadership())
}

// release gives the lease up, if ours, so that a standby takes over at
// once.
func (l *lease) release() {
	if !l.leading {
		return
	}
	l.until.Store(0)
	ctx, cancel := context.WithTimeout(context.Background(), l.renew)
	defer cancel()
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.id).Err(); err != nil {
		l.become(false, "", "stopping; releasing the lease failed, a standby takes over when it expires", slog.LevelWarn, slog.Any("err", err))
		return
	}
	l.become(false, "", "stopping; lease released", slog.LevelInfo)
}
