package launch

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// serveAside serves handler on ln, beside the command's main work (debug
// profiles, the broker's metrics). The returned stop shuts the server down
// and returns once its goroutine has.
func serveAside(ln net.Listener, handler http.Handler) (stop func()) {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		// Owner: the command; ends when stop shuts the server down.
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = ln.Close()
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
		<-done
	}
}
