package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// watchBackstop is how often WatchStatus looks at the connection even
// without a status event: nats.go drops events a listener has not taken
// yet, so an event alone is only a wake-up.
const watchBackstop = time.Second

// WatchStatus reports nc's state to observe until ctx is done: at once, and
// again after every change nats.go announces (connected, reconnecting,
// disconnected, closed). observe gets nil while nc is connected, otherwise
// the error that explains why not. It returns when ctx is done; run it on a
// goroutine the caller waits for.
func WatchStatus(ctx context.Context, nc *nats.Conn, observe func(error)) {
	events := nc.StatusChanged()
	defer nc.RemoveStatusListener(events)
	tick := time.NewTicker(watchBackstop)
	defer tick.Stop()
	for {
		observe(connError(nc))
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-tick.C:
		}
	}
}

// connError is nil while nc is connected, else its last error or its
// status.
func connError(nc *nats.Conn) error {
	status := nc.Status()
	if status == nats.CONNECTED {
		return nil
	}
	if err := nc.LastError(); err != nil {
		return err
	}
	// nats.go keeps no error for a refused first connection.
	return errors.New("nats: not connected (" + status.String() + ")")
}
