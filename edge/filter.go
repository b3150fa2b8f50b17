package edge

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spillway/spillway/edge/jsjson"
	"github.com/spillway/spillway/edge/keyword"
	"github.com/spillway/spillway/edge/store"
)

// filterer applies Mastodon's per-user rules to update and
// status.update events on public and hashtag streams, off the dispatch
// goroutines. Its database work per event does not depend on how many
// clients receive it: one query decides blocks, mutes and domain blocks for
// every viewer at once, and one more loads keyword filters for the
// connections that have none cached. Everything derived from the status
// (author, mentions, domain, searchable text) is computed once per event.
type filterer struct {
	store   Store
	timeout time.Duration
	logger  *slog.Logger
	metrics *metrics
	queues  []chan filterJob
}

type filterJob struct {
	ev   *event
	subs []*subscription
}

func newFilterer(st Store, n, queue int, timeout time.Duration, logger *slog.Logger, m *metrics) *filterer {
	f := &filterer{store: st, timeout: timeout, logger: logger, metrics: m}
	for range n {
		f.queues = append(f.queues, make(chan filterJob, queue))
	}
	return f
}

// enqueue hands one event and its filtered subscribers to the worker of the
// event's dispatch shard (so per-channel order holds). It never blocks: a
// full queue drops the event for these subscribers and counts it.
func (f *filterer) enqueue(shard int, ev *event, subs []*subscription) {
	select {
	case f.queues[shard%len(f.queues)] <- filterJob{ev, subs}:
	default:
		f.metrics.eventsDropped.WithLabelValues("filter_queue_full").Inc()
	}
}

// run processes jobs until ctx is done; one worker per queue.
func (f *filterer) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range f.queues {
		wg.Go(func() {
			var sc filterScratch
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-q:
					f.process(ctx, j, &sc)
				}
			}
		})
	}
	wg.Wait()
}

// filterScratch is one worker's reusable per-event buffers, so that
// filtering an event allocates nothing per viewer.
type filterScratch struct {
	cands   []*subscription
	viewers []int64
	buf     []byte
}

// statusInfo is what filtering needs from a status payload.
type statusInfo struct {
	ok          bool
	authorID    int64
	targets     []int64
	local       bool
	domain      string
	language    string
	hasLanguage bool
	hasFiltered bool

	// The searchable text is extracted (an HTML parse) only when some
	// viewer has keyword filters, once per event.
	payload  *jsjson.Value
	text     string
	textDone bool
}

// searchText returns the text keyword filters match against. Only
// the filter worker owning the event calls it.
func (st *statusInfo) searchText() string {
	if st.textDone {
		return st.text
	}
	st.textDone = true
	p := st.payload
	spoiler, _ := p.Get("spoiler_text").Str()
	var options, descriptions []string
	if opts := p.Get("poll").Get("options"); opts.Kind() == jsjson.Array {
		for i := range opts.Len() {
			options = append(options, textOf(opts.Index(i).Get("title")))
		}
	}
	media := p.Get("media_attachments")
	for i := range media.Len() {
		descriptions = append(descriptions, textOf(media.Index(i).Get("description")))
	}
	st.text = keyword.Text(spoiler, textOf(p.Get("content")), options, descriptions)
	return st.text
}

// statusOf extracts the status facts once per event. A payload Mastodon
// could not process (missing account, mentions or media_attachments, ids
// that are not numbers) is marked not ok and is delivered to nobody.
func statusOf(p *jsjson.Value) *statusInfo {
	st := &statusInfo{}
	acct := p.Get("account")
	id, ok := idOf(acct.Get("id"))
	if !ok {
		return st
	}
	username, ok1 := acct.Get("username").Str()
	acctName, ok2 := acct.Get("acct").Str()
	mentions := p.Get("mentions")
	media := p.Get("media_attachments")
	if !ok1 || !ok2 || mentions.Kind() != jsjson.Array || media.Kind() != jsjson.Array {
		return st
	}
	st.authorID = id
	st.targets = append(st.targets, id)
	for i := range mentions.Len() {
		mid := mentions.Index(i).Get("id")
		if mid.Kind() == jsjson.Undefined || mid.Kind() == jsjson.Null {
			continue // Mastodon's query gets NULL, which matches nothing
		}
		n, ok := idOf(mid)
		if !ok {
			return st
		}
		st.targets = append(st.targets, n)
	}
	st.local = username == acctName
	if _, rest, found := strings.Cut(acctName, "@"); found {
		st.domain, _, _ = strings.Cut(rest, "@")
	}
	st.language, st.hasLanguage = p.Get("language").Str()
	st.hasFiltered = p.Has("filtered")
	st.payload = p
	st.ok = true
	return st
}

// idOf reads an account id: a decimal string (Mastodon's form) or an
// integral number.
func idOf(v *jsjson.Value) (int64, bool) {
	switch v.Kind() {
	case jsjson.String:
		s, _ := v.Str()
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	case jsjson.Number:
		f, _ := v.Num()
		if f != float64(int64(f)) {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

// textOf is how Array.prototype.join renders an element: null and
// undefined as "", anything else as String(x).
func textOf(v *jsjson.Value) string {
	switch v.Kind() {
	case jsjson.Undefined, jsjson.Null:
		return ""
	case jsjson.String:
		s, _ := v.Str()
		return s
	}
	return string(v.AppendText(nil))
}

func (f *filterer) process(ctx context.Context, j filterJob, sc *filterScratch) {
	defer f.metrics.filterJobs.Inc()
	ev := j.ev
	if ev.status == nil {
		ev.status = statusOf(ev.payload())
	}
	st := ev.status
	if !st.ok {
		f.metrics.eventsDropped.WithLabelValues("invalid_status").Inc()
		return
	}
	// Steps 1 and 2: feed access and languages, in memory.
	cands, viewers := sc.cands[:0], sc.viewers[:0]
	defer func() {
		clear(cands) // the next event must not keep these sessions alive
		sc.cands, sc.viewers = cands[:0], viewers[:0]
	}()
	for _, sub := range j.subs {
		if sub.dead.Load() {
			continue
		}
		if st.local && sub.rule.blockLocal || !st.local && sub.rule.blockRemote {
			continue
		}
		if langs := sub.sess.id.ChosenLanguages; langs != nil && (!st.hasLanguage || !slices.Contains(langs, st.language)) {
			continue
		}
		cands = append(cands, sub)
		viewers = append(viewers, sub.sess.id.AccountID)
	}
	if len(cands) == 0 {
		return
	}
	slices.Sort(viewers)
	viewers = slices.Compact(viewers)

	qctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// Step 4: one query for every viewer.
	f.metrics.filterQueries.WithLabelValues("relationships").Inc()
	excluded, err := f.store.Excluded(qctx, viewers, store.StatusRef{AuthorID: st.authorID, Targets: st.targets, Domain: st.domain})
	if err != nil {
		f.fail(err, len(cands))
		return
	}
	// Step 5: keyword filters for connections without a cache, one query.
	loaded, loadFailed := f.loadFilters(qctx, st, cands, excluded)

	now := time.Now()
	buf := sc.buf[:0]
	defer func() { sc.buf = buf[:0] }()
	var sent [2]int
	for _, sub := range cands {
		s := sub.sess
		if excluded[s.id.AccountID] {
			continue
		}
		var filtered []byte
		if !st.hasFiltered {
			m := s.filters.Load()
			if m == nil {
				m = loaded[s]
			}
			if m == nil {
				if loadFailed {
					continue
				}
				m = emptyMatcher
			}
			if m.Empty() {
				filtered = emptyFiltered
			} else {
				buf = m.AppendResults(buf[:0], st.searchText(), now)
				filtered = buf
			}
		}
		if s.send(ev, sub.label, filtered) {
			sent[s.transport]++
		}
	}
	f.metrics.addSent(sent, ev)
}

var (
	emptyMatcher  = keyword.Compile(nil)
	emptyFiltered = []byte("[]")
)

// loadFilters loads keyword filters for every candidate connection that has
// none cached, in one query, compiling each account's filters once and
// caching the result on each connection (unless filters_changed arrived in
// the meantime, in which case the next event reloads).
func (f *filterer) loadFilters(ctx context.Context, st *statusInfo, cands []*subscription, excluded map[int64]bool) (map[*session]*keyword.Matcher, bool) {
	if st.hasFiltered {
		return nil, false
	}
	type want struct {
		s   *session
		gen uint64
	}
	var wants []want
	var accounts []int64
	for _, sub := range cands {
		s := sub.sess
		if excluded[s.id.AccountID] || s.filters.Load() != nil {
			continue
		}
		wants = append(wants, want{s, s.filtersGen.Load()})
		accounts = append(accounts, s.id.AccountID)
	}
	if len(wants) == 0 {
		return nil, false
	}
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)
	f.metrics.filterQueries.WithLabelValues("keyword_filters").Inc()
	rows, err := f.store.KeywordFilters(ctx, accounts)
	if err != nil {
		f.fail(err, len(wants))
		return nil, true
	}
	compiled := make(map[int64]*keyword.Matcher, len(accounts))
	out := make(map[*session]*keyword.Matcher, len(wants))
	for _, w := range wants {
		m, ok := compiled[w.s.id.AccountID]
		if !ok {
			m = keyword.Compile(rows[w.s.id.AccountID])
			compiled[w.s.id.AccountID] = m
		}
		out[w.s] = m
		if w.s.filtersGen.Load() == w.gen {
			w.s.filters.CompareAndSwap(nil, m)
		}
	}
	return out, false
}

// fail drops an event for n clients after a database error, as Mastodon
// does, and counts it.
func (f *filterer) fail(err error, n int) {
	f.metrics.filterErrors.Inc()
	f.metrics.eventsDropped.WithLabelValues("filter_error").Add(float64(n))
	f.logger.Warn("filter query failed; event dropped for its filtered clients", "err", err, "clients", n)
}
