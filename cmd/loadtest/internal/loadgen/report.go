package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spillway/spillway/cmd/loadtest/internal/hist"
)

// Report is the result of a run; it marshals to the -json output.
type Report struct {
	Target       string   `json:"target"`
	Mode         string   `json:"mode"` // "fixed", "ramp", "instance" or "soak"
	Streams      []string `json:"streams"`
	SSERatio     float64  `json:"sse_ratio"`
	WSSubscribe  bool     `json:"ws_subscribe"`
	Tokens       int      `json:"tokens"`
	SourceIPs    int      `json:"source_ips"`
	ConnectRate  float64  `json:"connect_rate"`
	Rate         float64  `json:"rate"`
	PayloadBytes int      `json:"payload_bytes"`
	WarmupSec    float64  `json:"warmup_seconds"`
	DurationSec  float64  `json:"duration_seconds"`
	ServerPID    int      `json:"server_pid,omitempty"`
	// ServerBaselineRSSKB is the server's RSS before the first connection.
	ServerBaselineRSSKB uint64  `json:"server_baseline_rss_kb,omitempty"`
	P99BoundMS          float64 `json:"p99_bound_ms,omitempty"`
	// Instance is the traffic model of an instance run.
	Instance *InstanceModel `json:"instance,omitempty"`
	// Soak is a soak's churn and resource samples.
	Soak  *SoakReport  `json:"soak,omitempty"`
	Steps []StepReport `json:"steps"`
	// LastGood is the last ramp step that met every bound (ramp mode only).
	LastGood *StepReport `json:"last_good,omitempty"`
}

// StepReport describes one measured window with TargetClients clients.
type StepReport struct {
	TargetClients int `json:"target_clients"`
	// Client population at the start of the window (cumulative over steps).
	Connected   int            `json:"connected"`
	Failed      int            `json:"failed"`
	FailReasons map[string]int `json:"fail_reasons,omitempty"`
	Dropped     int            `json:"dropped"`
	DropReasons map[string]int `json:"drop_reasons,omitempty"`
	// Unconfirmed clients were connected but never saw a probe, so they
	// were not counted in the window.
	Unconfirmed int `json:"unconfirmed"`
	Counted     int `json:"counted"`
	NewFailures int `json:"new_failures"`
	NewDrops    int `json:"new_drops"`
	SSE         int `json:"sse"`
	WebSocket   int `json:"websocket"`

	ConnectSeconds   float64     `json:"connect_seconds"`
	ConnectLatencyMS Percentiles `json:"connect_latency_ms"`
	ProbeSeconds     float64     `json:"probe_seconds"`

	Publish    PublishStats  `json:"publish"`
	Deliveries DeliveryStats `json:"deliveries"`
	LatencyMS  Percentiles   `json:"latency_ms"`

	Server         *ServerStats `json:"server,omitempty"`
	ToolCPUSeconds float64      `json:"tool_cpu_seconds"`
	ToolRSSKB      uint64       `json:"tool_rss_kb"`

	Good    bool   `json:"good"`
	Verdict string `json:"verdict,omitempty"`
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// PublishStats describes what the window published.
type PublishStats struct {
	Channels        int     `json:"channels"`
	Ticks           int     `json:"ticks"`
	Events          uint64  `json:"events"`
	Errors          uint64  `json:"errors"`
	Seconds         float64 `json:"seconds"`
	TicksPerSecond  float64 `json:"ticks_per_second"`
	EventsPerSecond float64 `json:"events_per_second"`
	// Instance runs: ticks are actions, each a status or a notification;
	// ScheduleLagMS is how late actions were published against their
	// schedule (a tool that cannot keep up shows here first).
	Statuses      uint64       `json:"statuses,omitempty"`
	Notifications uint64       `json:"notifications,omitempty"`
	ScheduleLagMS *Percentiles `json:"schedule_lag_ms,omitempty"`
}

// DeliveryStats compares owed and received deliveries of the window.
type DeliveryStats struct {
	Expected   uint64  `json:"expected"`
	Received   uint64  `json:"received"`
	Unique     uint64  `json:"unique"`
	Lost       uint64  `json:"lost"`
	LossPct    float64 `json:"loss_pct"`
	Duplicates uint64  `json:"duplicates"`
	Reordered  uint64  `json:"reordered"`
	// Late deliveries arrived too far behind to be checked for duplication.
	Late uint64 `json:"late"`
	// Unexpected counts distinct deliveries beyond what was owed.
	Unexpected uint64 `json:"unexpected"`
	// Misrouted counts marked events of a kind the client's stream never
	// carries in this run (a status on a notifications-only stream).
	Misrouted uint64 `json:"misrouted"`
	// Stale deliveries belong to warm-up or earlier windows; Foreign ones
	// are update events without this tool's markers; Other events are
	// non-update events (delete, notification, …).
	Stale         uint64  `json:"stale"`
	Foreign       uint64  `json:"foreign"`
	Other         uint64  `json:"other_events"`
	PerSecond     float64 `json:"per_second"`
	PublishErrors uint64  `json:"publish_errors"`
}

// ServerStats samples the server process (only with -server-pid).
type ServerStats struct {
	CPUSeconds           float64 `json:"cpu_seconds"`
	CPUMicrosPerDelivery float64 `json:"cpu_us_per_delivery"`
	// CPUMicrosPerEvent divides by the events published into Redis.
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event"`
	RSSConnectedKB    uint64  `json:"rss_connected_kb"`
	RSSAfterKB        uint64  `json:"rss_after_kb"`
	RSSPerConnKB      float64 `json:"rss_kb_per_connection"`
}

func newReport(cfg *Config, payloadBytes int) *Report {
	rep := &Report{
		Target: targetString(cfg.BaseURL), Mode: "fixed", SSERatio: cfg.SSERatio,
		WSSubscribe: cfg.WSSubscribe, Tokens: len(cfg.Tokens), SourceIPs: len(cfg.SourceIPs),
		ConnectRate: cfg.ConnectRate, Rate: cfg.Rate, PayloadBytes: payloadBytes,
		WarmupSec: cfg.Warmup.Seconds(), DurationSec: cfg.Duration.Seconds(),
		ServerPID: cfg.ServerPID,
	}
	for _, s := range cfg.Streams {
		rep.Streams = append(rep.Streams, fmt.Sprintf("%s=%d", s.Label(), s.Weight))
	}
	switch {
	case cfg.Ramp != nil:
		rep.Mode = "ramp"
		rep.P99BoundMS = ms(int64(cfg.Ramp.P99Bound))
	case cfg.Instance != nil:
		rep.Mode = "instance"
	case cfg.Soak != nil:
		rep.Mode = "soak"
	}
	return rep
}

// finish selects the last good ramp step.
func (rep *Report) finish() {
	if rep.Mode != "ramp" {
		return
	}
	rep.LastGood = nil
	for i := range rep.Steps {
		if !rep.Steps[i].Good {
			break
		}
		rep.LastGood = &rep.Steps[i]
	}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func percentiles(h *hist.Histogram) Percentiles {
	if h == nil || h.Count() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count: h.Count(),
		P50:   ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Max()), Mean: h.Mean() / 1e6,
	}
}

func (s *StepReport) fillClients(clients []*client, counted int) {
	s.Counted = counted
	for _, c := range clients {
		if c.sse {
			s.SSE++
		} else {
			s.WebSocket++
		}
		st := clientState(c.state.Load())
		c.mu.Lock()
		reason := c.reason
		c.mu.Unlock()
		switch st {
		case stateConnected:
			s.Connected++
			if !c.confirmed.Load() {
				s.Unconfirmed++
			}
		case stateFailed:
			s.Failed++
			if s.FailReasons == nil {
				s.FailReasons = map[string]int{}
			}
			s.FailReasons[reason]++
		case stateDropped:
			s.Dropped++
			if s.DropReasons == nil {
				s.DropReasons = map[string]int{}
			}
			s.DropReasons[reason]++
		}
	}
}

func deliveryStats(c windowCounts, r *runState, seconds float64) DeliveryStats {
	d := DeliveryStats{
		Expected: c.Expected, Received: c.Received, Unique: c.Unique, Lost: c.Lost,
		Duplicates: c.Duplicates, Reordered: c.Reordered, Late: c.Late, Unexpected: c.Unexpected,
		Misrouted: r.misrouted.Load(),
		Stale:     r.stale.Load(), Foreign: r.foreign.Load(), Other: r.otherEvents.Load(),
		PublishErrors: r.pubErrors.Load(),
	}
	if c.Expected > 0 {
		d.LossPct = 100 * float64(c.Lost) / float64(c.Expected)
	}
	if seconds > 0 {
		d.PerSecond = float64(c.Unique) / seconds
	}
	return d
}

// verdict decides whether a ramp step held its clients within bounds.
func (s *StepReport) verdict(p99Bound time.Duration) (bool, string) {
	switch {
	case s.NewFailures > 0:
		return false, fmt.Sprintf("%d connect failures", s.NewFailures)
	case s.NewDrops > 0:
		return false, fmt.Sprintf("%d connections dropped", s.NewDrops)
	case s.Unconfirmed > 0:
		return false, fmt.Sprintf("%d clients never confirmed", s.Unconfirmed)
	case s.Deliveries.Lost > 0:
		return false, fmt.Sprintf("lost %d deliveries", s.Deliveries.Lost)
	case s.Deliveries.Unique == 0:
		return false, "no deliveries measured"
	case s.LatencyMS.P99 > ms(int64(p99Bound)):
		return false, fmt.Sprintf("p99 %.2fms > %.2fms", s.LatencyMS.P99, ms(int64(p99Bound)))
	}
	return true, "ok"
}

// maxTableSamples is how many samples the table shows (JSON has all).
const maxTableSamples = 12

func (sk *SoakReport) writeTable(w io.Writer, p func(k, format string, a ...any)) {
	_, _ = fmt.Fprintf(w, "\nsoak: churn %.1f/s, lifetime %gs, resubscribe every %gs; a sample every %gs, flat within %.0f%%\n",
		sk.ChurnRate, sk.ChurnLifetimeSec, sk.ResubscribeSec, sk.SampleIntervalSec, 100*sk.Tolerance)
	c := sk.Churn
	p("churn", "%d started, %d connected, %d failed (%s), %d dropped (%s), %d skipped",
		c.Started, c.Connected, c.Failed, fmtReasons(c.FailReasons), c.Dropped, fmtReasons(c.DropReasons), c.Skipped)
	p("", "%d graceful + %d abrupt leaves, %d open at the end; %d subscribes, %d unsubscribes, %d events received",
		c.Graceful, c.Abrupt, c.Stopped, c.Subscribes, c.Unsubscribes, c.Events)
	sample := func(s SoakSample) string {
		g := "n/a"
		if s.Goroutines >= 0 {
			g = fmt.Sprint(s.Goroutines)
		}
		return fmt.Sprintf("rss %d KB, goroutines %s, open files %d, churn live %d", s.RSSKB, g, s.FDs, s.ChurnLive)
	}
	p("before churn", "%s", sample(sk.Before))
	p("after churn", "%s", sample(sk.After))
	trend := func(k, unit string, tr *Trend) {
		if tr == nil {
			p(k, "not sampled")
			return
		}
		verdict := "flat"
		if !tr.Flat {
			verdict = "GROWING"
		}
		p(k, "first quarter %.0f%s, last quarter %.0f%s (%+.1f%%), slope %+.1f%s/h: %s",
			tr.FirstQuarterMean, unit, tr.LastQuarterMean, unit, tr.GrowthPct, tr.SlopePerHour, unit, verdict)
	}
	trend("rss", " KB", sk.RSS)
	trend("goroutines", "", sk.Goroutines)
	trend("open files", "", sk.FDs)
	step := max(1, (len(sk.Samples)+maxTableSamples-1)/maxTableSamples)
	for i := 0; i < len(sk.Samples); i += step {
		k := ""
		if i == 0 {
			k = "samples"
		}
		p(k, "t=%7.1fs  %s", sk.Samples[i].Seconds, sample(sk.Samples[i]))
	}
	p("verdict", "%s", sk.Verdict)
}

func fmtReasons(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func fmtPct(p Percentiles) string {
	if p.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (n=%d)",
		p.P50, p.P90, p.P99, p.P999, p.Max, p.Count)
}

// WriteTable writes the human-readable report.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(k, format string, a ...any) {
		_, _ = fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, a...)...)
	}
	_, _ = fmt.Fprintf(tw, "spillway loadtest — %s (%s)\n", rep.Target, rep.Mode)
	p("streams", "%s  (sse ratio %.2f, ws subscribe %v)", strings.Join(rep.Streams, ","), rep.SSERatio, rep.WSSubscribe)
	if m := rep.Instance; m != nil {
		p("publishing", "%.1f events/s (%.1f actions/s, %s arrivals), %d-byte statuses, warmup %gs, window %gs",
			rep.Rate, m.ActionsPerSecond, m.Arrivals, rep.PayloadBytes, rep.WarmupSec, rep.DurationSec)
		p("accounts", "%d, one client each, %d on user streams; zipf %.2f (seed %d): busiest account %.1f%% of statuses, top 1%% %.1f%%",
			m.Accounts, m.UserAccounts, m.Zipf, m.Seed, 100*m.TopAuthorShare, 100*m.Top1PctShare)
		p("fan-out", "followers mean %.1f, max %d; %.0f%% public, %.0f%% of those tagged (%s); %.2f notifications per status",
			m.FollowersMean, m.FollowersMax, 100*m.PublicShare, 100*m.TaggedShare, strings.Join(m.Tags, ","), m.Notifications)
		p("", "%.2f home + %.2f public/hashtag = %.2f events per status, %.2f per action",
			m.HomePerStatus, m.EventsPerStatus-m.HomePerStatus, m.EventsPerStatus, m.EventsPerAction)
	} else {
		p("publishing", "%.1f ticks/s, %d-byte events, warmup %gs, window %gs", rep.Rate, rep.PayloadBytes, rep.WarmupSec, rep.DurationSec)
	}
	if rep.ServerPID > 0 {
		p("server", "pid %d, baseline RSS %d KB", rep.ServerPID, rep.ServerBaselineRSSKB)
	}
	for i := range rep.Steps {
		s := &rep.Steps[i]
		_, _ = fmt.Fprintf(tw, "\nstep %d: %d clients", i+1, s.TargetClients)
		if rep.Mode == "ramp" {
			_, _ = fmt.Fprintf(tw, " — %s", s.Verdict)
		}
		_, _ = fmt.Fprintln(tw)
		p("clients", "%d connected (%d sse, %d ws total), %d failed, %d dropped, %d unconfirmed, %d counted",
			s.Connected, s.SSE, s.WebSocket, s.Failed, s.Dropped, s.Unconfirmed, s.Counted)
		p("connect failures", "%s", fmtReasons(s.FailReasons))
		p("drops", "%s", fmtReasons(s.DropReasons))
		p("connect ms", "%s  [%.1fs to connect, %.1fs to confirm]", fmtPct(s.ConnectLatencyMS), s.ConnectSeconds, s.ProbeSeconds)
		if s.Publish.ScheduleLagMS != nil {
			p("published", "%d events (%.1f/s) on %d channels in %.1fs: %d statuses, %d notifications (%d errors)",
				s.Publish.Events, s.Publish.EventsPerSecond, s.Publish.Channels, s.Publish.Seconds,
				s.Publish.Statuses, s.Publish.Notifications, s.Publish.Errors)
			p("schedule lag ms", "%s", fmtPct(*s.Publish.ScheduleLagMS))
		} else {
			p("published", "%d events on %d channels in %.1fs (%.1f ticks/s, %d errors)",
				s.Publish.Events, s.Publish.Channels, s.Publish.Seconds, s.Publish.TicksPerSecond, s.Publish.Errors)
		}
		d := s.Deliveries
		p("deliveries", "%d expected, %d received, %d lost (%.4f%%), %d duplicates, %d reordered, %d late, %d unexpected",
			d.Expected, d.Received, d.Lost, d.LossPct, d.Duplicates, d.Reordered, d.Late, d.Unexpected)
		p("", "%.0f deliveries/s; %d stale, %d foreign, %d misrouted, %d other events", d.PerSecond, d.Stale, d.Foreign, d.Misrouted, d.Other)
		p("latency ms", "%s", fmtPct(s.LatencyMS))
		if sv := s.Server; sv != nil {
			p("server cpu", "%.2fs = %.2f µs/delivery, %.2f µs/event", sv.CPUSeconds, sv.CPUMicrosPerDelivery, sv.CPUMicrosPerEvent)
			p("server rss", "%d KB connected, %d KB after = %.2f KB/connection over baseline",
				sv.RSSConnectedKB, sv.RSSAfterKB, sv.RSSPerConnKB)
		}
		p("tool", "%.2fs cpu, %d KB rss", s.ToolCPUSeconds, s.ToolRSSKB)
	}
	if sk := rep.Soak; sk != nil {
		sk.writeTable(tw, p)
	}
	if rep.Mode == "ramp" {
		if rep.LastGood != nil {
			_, _ = fmt.Fprintf(tw, "\nramp result: %d clients held with p99 %.2fms <= %.2fms and no loss\n",
				rep.LastGood.TargetClients, rep.LastGood.LatencyMS.P99, rep.P99BoundMS)
		} else {
			_, _ = fmt.Fprintf(tw, "\nramp result: no step met the bounds\n")
		}
	}
	return tw.Flush()
}
