package loadgen

import (
	"strings"
	"testing"
	"time"

	"github.com/spillway/spillway/cmd/loadtest/internal/hist"
	"github.com/spillway/spillway/shared/benchdata/payload"
)

func FuzzParseInputs(f *testing.F) {
	f.Add("public=3,user,hashtag:Cats=2,hashtag:local:x", "tok\t1\n# c\ntok2 2\n", "127.0.0.2,::1",
		"1 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0", "VmRSS:\t 12 kB\n")
	f.Add("", "", "8", "", "")
	f.Add("hashtag:=1000", "a b c", "x", ")", "VmRSS:")
	f.Fuzz(func(t *testing.T, streams, tokens, ips, stat, status string) {
		if ss, err := ParseStreams(streams); err == nil {
			for _, s := range ss {
				if s.Weight < 1 || s.Weight > 1000 || s.Channel("1") == "" || s.SSEPath() == "" {
					t.Fatalf("bad stream %+v", s)
				}
			}
			if len(weightedCycle(ss)) == 0 {
				t.Fatal("empty cycle")
			}
		}
		if toks, err := ParseTokens(strings.NewReader(tokens)); err == nil {
			for _, tk := range toks {
				if tk.Value == "" || strings.ContainsAny(tk.Value+tk.AccountID, " \t\n") {
					t.Fatalf("bad token %q", tk)
				}
			}
		}
		if list, err := ParseSourceIPs(ips); err == nil {
			for _, ip := range list {
				if !ip.IsLoopback() {
					t.Fatalf("non-loopback %v", ip)
				}
			}
		}
		_, _ = parseStatCPU([]byte(stat))
		_, _ = parseStatusRSS([]byte(status))
	})
}

func BenchmarkOnUpdate(b *testing.B) {
	r := &runState{base: time.Now()}
	r.lat.Store(hist.New())
	ch := &channel{name: "timeline:public"}
	ch.lo.Store(1)
	c := &client{ch: ch, inWindow: true}
	c.tracker.reset(1)
	gen := payload.NewGenerator(payload.DefaultAuthor(), 3500)
	msgs := make([][]byte, 1024)
	for i := range msgs {
		m := gen.Append(nil, uint64(i+1), r.nowNS(), false)
		// Strip the Redis envelope: clients see the status object.
		msgs[i] = m[len(`{"event":"update","payload":`) : len(m)-1]
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(msgs) == 0 {
			c.tracker.reset(1)
		}
		r.onEvent(c, false, msgs[i%len(msgs)])
	}
}
