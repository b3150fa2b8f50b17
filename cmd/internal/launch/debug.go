package launch

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
)

// serveDebug serves Go's profiling endpoints on their own listener, never
// on the public one. It returns a function that stops the server
// and waits for it.
func serveDebug(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("STREAMING_DEBUG_LISTEN %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return serveAside(ln, mux), nil
}
