// Command broker bridges Mastodon's Redis to NATS: run exactly one per
// Mastodon instance. It embeds a NATS server for the edges (or publishes to
// an external NATS cluster when STREAMING_NATS_URL is set) and keeps Rails'
// `subscribed:` keys alive for every channel the edges serve. See
// `broker -help`.
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
	if err := launch.Broker(ctx, os.Args, os.LookupEnv, os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
