package loadgen_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/spillway/spillway/cmd/loadtest/internal/fakestream"
	"github.com/spillway/spillway/cmd/loadtest/internal/loadgen"
	"github.com/spillway/spillway/shared/benchdata/payload"
)

// domainBlockingHub stands in for a server whose every subscriber
// domain-blocks one domain: statuses by its accounts are never delivered.
type domainBlockingHub struct {
	hub
	acct []byte
}

func (h domainBlockingHub) Publish(ctx context.Context, msgs []loadgen.Message) error {
	kept := msgs[:0:0]
	for _, m := range msgs {
		if !bytes.Contains(m.Data, h.acct) {
			kept = append(kept, m)
		}
	}
	return h.hub.Publish(ctx, kept)
}

func TestRunRotatesAuthors(t *testing.T) {
	srv := fakestream.New(fakestream.Options{})
	defer srv.Close()
	cfg := baseConfig(t, srv)
	cfg.Authors = []payload.Author{
		{ID: "200000000000000001", Username: "bench1"},
		{ID: "200000000900000001", Username: "author1", Domain: "blocked.example"},
	}
	rep, err := loadgen.Run(t.Context(), cfg, domainBlockingHub{hub{srv}, []byte(`"acct":"author1@blocked.example"`)})
	if err != nil {
		t.Fatal(err)
	}
	st := rep.Steps[0]
	// Probes are by the neutral author, so every client confirms even
	// though it never sees the blocked author's statuses.
	if st.Unconfirmed != 0 || st.Counted != cfg.Clients {
		t.Fatalf("clients: %+v", st)
	}
	d := st.Deliveries
	n := uint64(st.Counted)
	if d.Expected != n*ticks || d.Lost != n*ticks/2 || d.Unique != n*ticks/2 {
		t.Fatalf("deliveries %+v: want half of %d per client lost to the blocked author", d, ticks)
	}
}

func TestValidateLimitsAuthors(t *testing.T) {
	srv := fakestream.New(fakestream.Options{})
	defer srv.Close()
	cfg := baseConfig(t, srv)
	cfg.Authors = make([]payload.Author, payload.MaxAuthors+1)
	if err := cfg.Validate(); err == nil {
		t.Fatal("too many authors accepted")
	}
}
