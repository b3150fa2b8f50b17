// Command edge serves Mastodon's streaming API (SSE and WebSocket) to
// clients. Run as many as needed behind a load balancer, fed by one broker
// over NATS; or run one with -all-in-one as a drop-in replacement for
// Mastodon's streaming server. See `edge -help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spillway/spillway/cmd/internal/launch"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := launch.Edge(ctx, os.Args, os.LookupEnv, os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
