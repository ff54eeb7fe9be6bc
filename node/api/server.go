// Package api is the daemon's local control API: HTTP+JSON on loopback, and
// Prometheus metrics at /metrics. The CLI uses Client; services of the node
// add their own routes with Server.Handle.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves the local API of one node.
type Server struct {
	node *node.Node
	mux  *http.ServeMux

	mu     sync.Mutex
	extras map[string]func() any
}

// NewServer returns the API of n. Metrics are served from reg (libp2p's and
// hivecast's collectors registered there).
func NewServer(n *node.Node, reg *prometheus.Registry) *Server {
	s := &Server{node: n, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /v1/id", s.id)
	s.mux.HandleFunc("GET /v1/peers", s.peers)
	s.mux.HandleFunc("POST /v1/connect", s.connect)
	s.mux.HandleFunc("GET /v1/status", s.status)
	if reg != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}
	return s
}

// Handle adds a route (Go 1.22 pattern syntax, e.g. "GET /v1/files").
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP refuses requests whose Host is not a loopback name or address, so
// a web page in the user's browser cannot drive the daemon (DNS rebinding).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !LoopbackHost(r.Host) {
		WriteError(w, http.StatusForbidden, errors.New("forbidden: the hivecast API only answers requests addressed to a loopback host"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// LoopbackHost reports whether an HTTP Host header names this machine's
// loopback interface: localhost, 127.0.0.0/8 or ::1, with or without port.
func LoopbackHost(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// IDResponse is GET /v1/id.
type IDResponse struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

func (s *Server) id(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, IDResponse{ID: s.node.Host().ID().String(), Addrs: s.node.Addrs()})
}

func (s *Server) peers(w http.ResponseWriter, r *http.Request) {
	ps := s.node.Peers()
	if ps == nil {
		ps = []node.PeerInfo{}
	}
	WriteJSON(w, http.StatusOK, ps)
}

// ConnectRequest is the body of POST /v1/connect.
type ConnectRequest struct {
	Addr string `json:"addr"`
}

// ConnectResponse answers POST /v1/connect.
type ConnectResponse struct {
	ID        string  `json:"id"`
	LatencyMS float64 `json:"latency_ms"`
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	var req ConnectRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		WriteError(w, http.StatusBadRequest, errors.New("body must be JSON {\"addr\": MULTIADDR}"))
		return
	}
	if _, err := node.ParseAddr(req.Addr); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	ai, err := s.node.Connect(ctx, req.Addr)
	if err != nil {
		WriteError(w, http.StatusBadGateway, err)
		return
	}
	lat := s.node.Host().Peerstore().LatencyEWMA(ai.ID)
	WriteJSON(w, http.StatusOK, ConnectResponse{ID: ai.ID.String(), LatencyMS: float64(lat.Microseconds()) / 1000})
}

// AddStatus adds a field to GET /v1/status, computed by fn at each request.
func (s *Server) AddStatus(key string, fn func() any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.extras == nil {
		s.extras = map[string]func() any{}
	}
	s.extras[key] = fn
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(s.node.Status())
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	s.mu.Lock()
	fns := make(map[string]func() any, len(s.extras))
	for k, fn := range s.extras {
		fns[k] = fn
	}
	s.mu.Unlock()
	for k, fn := range fns {
		out[k] = fn()
	}
	WriteJSON(w, http.StatusOK, out)
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes {"error": "..."} with the given status.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, ErrorResponse{Error: err.Error()})
}
