package launch

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestRunTogether(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		brokerErr error // returned by a broker that stops by itself; nil: it runs until cancelled
		stopsSelf bool
		wantErr   error
		wantMsg   string
	}{
		{name: "shutdown", wantErr: nil},
		{name: "broker fails", stopsSelf: true, brokerErr: boom, wantErr: boom},
		{name: "broker returns nil early", stopsSelf: true, wantMsg: "broker stopped unexpectedly"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			edgeStopped := make(chan struct{})
			brokerSawEdgeStop := make(chan bool, 1)
			edge := func(ctx context.Context) error {
				<-ctx.Done()
				close(edgeStopped)
				return nil
			}
			broker := func(ctx context.Context) error {
				if tc.stopsSelf {
					return tc.brokerErr
				}
				<-ctx.Done()
				select {
				case <-edgeStopped:
					brokerSawEdgeStop <- true
				default:
					brokerSawEdgeStop <- false
				}
				return nil
			}
			done := make(chan error, 1)
			go func() { done <- runTogether(ctx, slog.New(slog.DiscardHandler), edge, broker) }()
			if !tc.stopsSelf {
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("runTogether did not return")
			}
			switch {
			case tc.wantMsg != "":
				if err == nil || err.Error() != tc.wantMsg {
					t.Fatalf("err = %v, want %q", err, tc.wantMsg)
				}
			case !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !tc.stopsSelf && !<-brokerSawEdgeStop {
				t.Fatal("the broker was stopped before the edge had drained")
			}
		})
	}
}
