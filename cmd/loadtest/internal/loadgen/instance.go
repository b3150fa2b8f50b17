package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/spillway/spillway/cmd/loadtest/internal/hist"
)

// maxHomeEdges bounds the follower graph an instance run keeps (one
// pointer per follower with a user client).
const maxHomeEdges = 5_000_000

// Arrivals is how an instance run spaces its actions in time.
type Arrivals int

const (
	// Poisson spaces actions by exponentially distributed gaps, as
	// independent people posting do.
	Poisson Arrivals = iota
	// Even spaces actions exactly 1/rate apart.
	Even
)

// ParseArrivals parses -arrivals.
func ParseArrivals(s string) (Arrivals, error) {
	switch s {
	case "poisson":
		return Poisson, nil
	case "even":
		return Even, nil
	}
	return 0, fmt.Errorf("-arrivals %q: want poisson or even", s)
}

func (a Arrivals) String() string {
	if a == Even {
		return "even"
	}
	return "poisson"
}

// Instance describes the instance scenario: one client per account, and
// traffic shaped the way Rails publishes a real instance's statuses and
// notifications. Config.Rate is then the total of events published into
// Redis per second, and Config.MaxTicks bounds actions.
//
// Every action is a status or a notification. A status's author is drawn
// with probability proportional to 1/rank^Zipf of a seeded activity
// ranking; it is published to the author's own timeline:<id> and to each
// follower's, as Rails' fan-out on write does (only timelines with a user
// client, since Rails publishes home events only to subscribed timelines),
// in one burst; a PublicShare of statuses also goes to timeline:public,
// :public:local, :public:media and :public:local:media (the generated status
// is local and has an image), and a TaggedShare of those to one hashtag's
// timeline:hashtag:<tag> and its :local twin. A notification goes to
// timeline:<id>:notifications of an account with a user or
// user:notification client, drawn by popularity.
type Instance struct {
	// Zipf is the exponent of both skews: account activity, and follower
	// counts by a second, independent popularity ranking (0 = uniform).
	Zipf float64
	// Followers is the mean number of followers an account has among the
	// run's accounts (the online followers Rails publishes to).
	Followers float64
	// PublicShare of statuses are public; TaggedShare of those carry a tag.
	PublicShare, TaggedShare float64
	// Notifications per status.
	Notifications float64
	Arrivals      Arrivals
	// Seed selects rankings, the follower graph, the actions and (with
	// Poisson arrivals) their gaps; equal configs give equal traffic.
	Seed uint64
}

// instanceStreams are the streams an instance run publishes events for.
var instanceStreams = map[string]bool{
	"user": true, "user:notification": true, "public": true, "public:local": true,
	"public:media": true, "public:local:media": true, "hashtag": true, "hashtag:local": true,
}

func (in *Instance) validate(c *Config) error {
	for _, s := range c.Streams {
		if !instanceStreams[s.Name] {
			return fmt.Errorf("stream %s never receives events in an instance run (use user, user:notification, public, public:local, public:media, public:local:media, hashtag:TAG, hashtag:local:TAG)", s.Label())
		}
	}
	ok := func(v float64) bool { return v >= 0 && v <= 1 }
	switch {
	case !(in.Zipf >= 0 && in.Zipf <= 5):
		return errors.New("-zipf must be in 0..5")
	case !(in.Followers >= 0):
		return errors.New("-followers must not be negative")
	case !ok(in.PublicShare) || !ok(in.TaggedShare):
		return errors.New("-public and -tagged must be in 0..1")
	case !(in.Notifications >= 0 && in.Notifications <= 100):
		return errors.New("-notifications must be in 0..100")
	}
	if len(c.Tokens) == 0 {
		return errors.New("an instance run needs -tokens with account ids")
	}
	for i, t := range c.Tokens {
		if t.AccountID == "" {
			return fmt.Errorf("an instance run needs an account id for token %d (token<TAB>account_id or -accounts)", i+1)
		}
	}
	if n := len(distinctAccounts(c.Tokens)); c.Clients > n {
		return fmt.Errorf("-clients %d: the tokens have only %d distinct accounts (one client per account)", c.Clients, n)
	}
	return nil
}

// DistinctAccounts counts the accounts of tokens: the most clients an
// instance run can have.
func DistinctAccounts(tokens []Token) int { return len(distinctAccounts(tokens)) }

// distinctAccounts keeps the first token of every account.
func distinctAccounts(tokens []Token) []Token {
	seen := make(map[string]bool, len(tokens))
	var out []Token
	for _, t := range tokens {
		if !seen[t.AccountID] {
			seen[t.AccountID] = true
			out = append(out, t)
		}
	}
	return out
}

// notificationsChannel is the channel Rails publishes an account's
// notifications on.
func notificationsChannel(account string) string {
	return "timeline:" + account + ":notifications"
}

// InstanceModel summarises the traffic an instance run's model produces.
type InstanceModel struct {
	Accounts         int      `json:"accounts"`
	UserAccounts     int      `json:"accounts_with_user_client"`
	Zipf             float64  `json:"zipf"`
	FollowersMean    float64  `json:"followers_mean"`
	FollowersMax     int      `json:"followers_max"`
	PublicShare      float64  `json:"public_share"`
	TaggedShare      float64  `json:"tagged_share"`
	Tags             []string `json:"tags"`
	Notifications    float64  `json:"notifications_per_status"`
	Arrivals         string   `json:"arrivals"`
	Seed             uint64   `json:"seed"`
	TopAuthorShare   float64  `json:"top_author_share"`
	Top1PctShare     float64  `json:"top_1pct_authors_share"`
	HomePerStatus    float64  `json:"home_events_per_status"`
	EventsPerStatus  float64  `json:"events_per_status"`
	EventsPerAction  float64  `json:"events_per_action"`
	ActionsPerSecond float64  `json:"actions_per_second"`
}

// instancePlan is the model built for the run's clients; it is owned by
// the publishing goroutine.
type instancePlan struct {
	model InstanceModel
	// authorCum is the cumulative activity weight by account (client
	// order), for drawing authors.
	authorCum []float64
	// home[homeOff[a]:homeOff[a+1]] are the timelines a status by account
	// a is published to.
	homeOff []int32
	home    []*channel
	// recipCum is the cumulative popularity weight of recips, the
	// notification channels of accounts that receive notifications.
	recipCum []float64
	recips   []*channel
	public   []*channel
	tags     [][2]*channel
	notifyP  float64 // probability that an action is a notification
	rate     float64 // actions per second
	arrivals Arrivals
	content  *rand.Rand
	gaps     *rand.Rand
	in       Instance
}

// zipfWeights returns 1/(rank+1)^s for the ranks of a seeded random
// permutation of n accounts, indexed by account.
func zipfWeights(n int, s float64, rng *rand.Rand) []float64 {
	w := make([]float64, n)
	for a, rank := range rng.Perm(n) {
		w[a] = math.Pow(float64(rank+1), -s)
	}
	return w
}

// followerCounts returns the expected follower count of each account:
// proportional to its popularity weight, at most n-1, with mean mean
// (water-filling: accounts at the cap give their excess to the others).
func followerCounts(w []float64, mean float64) []float64 {
	n := len(w)
	out := make([]float64, n)
	if n < 2 || mean <= 0 {
		return out
	}
	limit := float64(n - 1)
	want := mean * float64(n)
	total := func(c float64) float64 {
		s := 0.0
		for _, x := range w {
			s += math.Min(limit, c*x)
		}
		return s
	}
	lo, hi := 0.0, 1.0
	for total(hi) < want && hi < 1e300 {
		hi *= 2
	}
	for range 200 {
		mid := (lo + hi) / 2
		if total(mid) < want {
			lo = mid
		} else {
			hi = mid
		}
	}
	for a, x := range w {
		out[a] = math.Min(limit, hi*x)
	}
	return out
}

func cumulative(w []float64) []float64 {
	out := make([]float64, len(w))
	s := 0.0
	for i, x := range w {
		s += x
		out[i] = s
	}
	return out
}

// draw picks an index with probability proportional to its weight.
func draw(cum []float64, rng *rand.Rand) int {
	u := rng.Float64() * cum[len(cum)-1]
	i := sort.Search(len(cum), func(i int) bool { return cum[i] > u })
	return min(i, len(cum)-1) // u can round up to the total
}

// buildPlan builds the instance model over the run's clients (client i is
// account i).
func (r *runState) buildPlan() error {
	in := *r.cfg.Instance
	n := len(r.clients)
	rng := rand.New(rand.NewPCG(in.Seed, 0x5eed_1257_a11c_e5))
	p := &instancePlan{
		in: in, arrivals: in.Arrivals, content: rng,
		gaps: rand.New(rand.NewPCG(in.Seed, 0x9a95_0f_a441)),
	}
	if in.Followers > float64(n-1) {
		return fmt.Errorf("-followers %.1f: at most %d with %d accounts", in.Followers, n-1, n)
	}
	activity := zipfWeights(n, in.Zipf, rng)
	popularity := zipfWeights(n, in.Zipf, rng)
	p.authorCum = cumulative(activity)

	isUser := func(a int) bool { return r.clients[a].stream.Name == "user" }
	counts := followerCounts(popularity, in.Followers)
	mark := make([]int32, n)
	others := make([]int32, 0, n)
	p.homeOff = make([]int32, n+1)
	var followers []int32
	fsum, fmax := 0, 0
	for a := range n {
		f := int(counts[a])
		if rng.Float64() < counts[a]-float64(f) {
			f++
		}
		f = min(f, n-1)
		fsum += f
		fmax = max(fmax, f)
		followers = sampleOthers(followers[:0], a, f, n, mark, &others, rng)
		if isUser(a) {
			p.home = append(p.home, r.clients[a].ch)
		}
		for _, x := range followers {
			if isUser(int(x)) {
				p.home = append(p.home, r.clients[x].ch)
			}
		}
		if len(p.home) > maxHomeEdges {
			return fmt.Errorf("the follower graph has more than %d timelines to publish to; lower -followers", maxHomeEdges)
		}
		p.homeOff[a+1] = int32(len(p.home))
	}

	var recipW []float64
	for a, c := range r.clients {
		if c.nch != nil {
			p.recips = append(p.recips, c.nch)
			recipW = append(recipW, popularity[a])
		}
	}
	p.recipCum = cumulative(recipW)
	for _, name := range []string{"timeline:public", "timeline:public:local", "timeline:public:media", "timeline:public:local:media"} {
		p.public = append(p.public, r.channelNamed(name, false))
	}
	var tags []string
	for _, s := range r.cfg.Streams {
		if t := NormalizeTag(s.Tag); s.Tag != "" && t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	if len(tags) == 0 {
		tags = []string{"spillway"} // the generated status's own tag
	}
	for _, t := range tags {
		p.tags = append(p.tags, [2]*channel{
			r.channelNamed("timeline:hashtag:"+t, false),
			r.channelNamed("timeline:hashtag:"+t+":local", false),
		})
	}

	// The exact expectation of events per action for this graph.
	total := p.authorCum[n-1]
	home := 0.0
	for a := range n {
		home += activity[a] / total * float64(p.homeOff[a+1]-p.homeOff[a])
	}
	perStatus := home + in.PublicShare*(float64(len(p.public))+in.TaggedShare*2)
	notes := in.Notifications
	if len(p.recips) == 0 && notes > 0 {
		return errors.New("-notifications needs user or user:notification clients to notify")
	}
	p.notifyP = notes / (1 + notes)
	perAction := (1-p.notifyP)*perStatus + p.notifyP
	if perAction <= 0 {
		return errors.New("this instance publishes nothing: add user clients, or -public or -notifications above 0")
	}
	sorted := slices.Clone(activity)
	slices.Sort(sorted)
	slices.Reverse(sorted)
	top := 0.0
	for _, x := range sorted[:max(1, n/100)] {
		top += x
	}
	users := 0
	for a := range n {
		if isUser(a) {
			users++
		}
	}
	p.model = InstanceModel{
		Accounts: n, UserAccounts: users, Zipf: in.Zipf,
		FollowersMean: float64(fsum) / float64(n), FollowersMax: fmax,
		PublicShare: in.PublicShare, TaggedShare: in.TaggedShare, Tags: tags,
		Notifications: notes, Arrivals: in.Arrivals.String(), Seed: in.Seed,
		TopAuthorShare: sorted[0] / total, Top1PctShare: top / total,
		HomePerStatus: home, EventsPerStatus: perStatus, EventsPerAction: perAction,
	}
	r.plan = p
	p.setRate(r.cfg.Rate)
	return nil
}

// setRate sets the total event rate; actions follow at rate/events per action.
func (p *instancePlan) setRate(eventsPerSecond float64) {
	p.rate = eventsPerSecond / p.model.EventsPerAction
	p.model.ActionsPerSecond = p.rate
}

// sampleOthers appends k distinct accounts other than a, drawn uniformly
// from 0..n-1. mark (all < a+1 on entry) and others are scratch space.
func sampleOthers(dst []int32, a, k, n int, mark []int32, others *[]int32, rng *rand.Rand) []int32 {
	stamp := int32(a + 1)
	if k > (n-1)/2 {
		// Dense: a partial shuffle of everyone else.
		o := (*others)[:0]
		for x := range n {
			if x != a {
				o = append(o, int32(x))
			}
		}
		for i := range k {
			j := i + rng.IntN(len(o)-i)
			o[i], o[j] = o[j], o[i]
		}
		*others = o
		return append(dst, o[:k]...)
	}
	for len(dst) < k {
		x := rng.IntN(n)
		if x == a || mark[x] == stamp {
			continue
		}
		mark[x] = stamp
		dst = append(dst, int32(x))
	}
	return dst
}

// action draws the next action and appends the channels it publishes to.
func (p *instancePlan) action(dst []*channel) (_ []*channel, notification bool) {
	rng := p.content
	if p.notifyP > 0 && rng.Float64() < p.notifyP {
		return append(dst, p.recips[draw(p.recipCum, rng)]), true
	}
	a := draw(p.authorCum, rng)
	dst = append(dst, p.home[p.homeOff[a]:p.homeOff[a+1]]...)
	if p.in.PublicShare > 0 && rng.Float64() < p.in.PublicShare {
		dst = append(dst, p.public...)
		if p.in.TaggedShare > 0 && rng.Float64() < p.in.TaggedShare {
			t := p.tags[rng.IntN(len(p.tags))]
			dst = append(dst, t[0], t[1])
		}
	}
	return dst, false
}

// gap is the time to the next action, in seconds.
func (p *instancePlan) gap() float64 {
	if p.arrivals == Even {
		return 1 / p.rate
	}
	return p.gaps.ExpFloat64() / p.rate
}

// publishInstance publishes the instance's actions on their schedule for d
// (or maxActions actions when positive). Each wake-up publishes every
// action that is due, so the average rate holds whatever the timer's
// resolution; each action's events go out in one burst.
func (r *runState) publishInstance(ctx context.Context, d time.Duration, maxActions int, measuring bool) (publishResult, error) {
	p := r.plan
	res := publishResult{lag: hist.New()}
	var b batch
	var targets []*channel
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	due := 0.0 // seconds after start
	for {
		elapsed := time.Since(start)
		if elapsed >= d {
			return res, nil
		}
		now := elapsed.Seconds()
		for due <= now && len(b.msgs) < publishBatch && (maxActions <= 0 || res.ticks < maxActions) {
			res.lag.Record(int64((now - due) * 1e9))
			var notification bool
			targets, notification = p.action(targets[:0])
			if notification {
				res.notifications++
			} else {
				res.statuses++
			}
			for _, ch := range targets {
				b.add(r, ch, ch.nextSeq, false)
				ch.nextSeq++
				if len(b.msgs) == publishBatch {
					r.flush(ctx, &b, &res, measuring)
				}
			}
			res.ticks++
			due += p.gap()
		}
		r.flush(ctx, &b, &res, measuring)
		if maxActions > 0 && res.ticks >= maxActions {
			return res, nil
		}
		if wait := time.Duration((due-time.Since(start).Seconds())*1e9) + 1; wait > 0 {
			timer.Reset(min(wait, d-time.Since(start)+1))
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-timer.C:
			}
		} else if err := ctx.Err(); err != nil {
			return res, err
		}
	}
}

// notifyingAccount is the account in every generated notification.
const notifyingAccount = `{"id":"109000000000000002","username":"alice","acct":"alice","display_name":"Alice","locked":false,"bot":false,"discoverable":true,"indexable":true,"group":false,"created_at":"2023-01-15T00:00:00.000Z","note":"","url":"https://social.example/@alice","uri":"https://social.example/users/alice","avatar":"https://cdn.example/avatars/a11ce.png","avatar_static":"https://cdn.example/avatars/a11ce.png","header":"https://cdn.example/headers/a11ce.jpg","header_static":"https://cdn.example/headers/a11ce.jpg","followers_count":12,"following_count":34,"statuses_count":56,"last_status_at":"2024-05-01","hide_collections":false,"noindex":false,"emojis":[],"roles":[],"fields":[]}`

const updatePrefix = `{"event":"update","payload":`

// appendNotification appends a Redis "notification" message whose payload
// is a mention notification of the status in msg (a generated update
// message), so the status's markers travel inside it.
func appendNotification(dst []byte, seq uint64, msg []byte) []byte {
	status, ok := bytes.CutPrefix(msg, []byte(updatePrefix))
	if !ok || len(status) == 0 {
		return dst
	}
	status = status[:len(status)-1] // the envelope's closing brace
	dst = append(dst, `{"event":"notification","payload":{"id":"`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `","type":"mention","created_at":"2024-05-01T12:00:00.000Z","group_key":"ungrouped-`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `","account":`+notifyingAccount+`,"status":`...)
	dst = append(dst, status...)
	return append(dst, "}}"...)
}
