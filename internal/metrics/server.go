package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the HTTP endpoint: /metrics (Prometheus' text format), /ready
// and /healthz (200 "ok", or 503 with one line per problem).
type Server struct {
	srv  *http.Server
	done chan struct{}
	stop chan struct{}
}

// Registry returns a registry with c, the Go runtime's collector and the
// process's.
func Registry(c *Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), newProcessCollector())
	return reg
}

// Handler serves the paths of the endpoint.
func Handler(c *Collector, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(Registry(c), promhttp.HandlerOpts{
		ErrorLog:      errorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	probe := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if p := c.Problems(); len(p) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(p, "\n"))
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux.HandleFunc("GET /ready", probe)
	mux.HandleFunc("GET /healthz", probe)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ulogd: /metrics /ready /healthz")
	})
	return mux
}

// errorLog carries promhttp's errors to the daemon log.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Println(v ...any) { e.log.Error(fmt.Sprint(v...)) }

// Serve serves the endpoint on ln until Close, and samples the sources'
// loss counters every second for /ready.
func Serve(ln net.Listener, c *Collector, log *slog.Logger) *Server {
	s := &Server{
		srv: &http.Server{
			Handler:           Handler(c, log),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		done: make(chan struct{}),
		stop: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.Observe()
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

// Close stops the endpoint, letting requests in flight finish for up to a
// second.
func (s *Server) Close() {
	close(s.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}
