package live

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hivecast/hivecast/node/api"
	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/ipfs/go-cid"
)

// BroadcastRequest is the body of POST /v1/broadcast.
type BroadcastRequest struct {
	Name string `json:"name"`
}

// BroadcastResponse answers POST /v1/broadcast.
type BroadcastResponse struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Path is where to PUT the MPEG-TS input (add ?realtime=1 to pace it).
	Path string `json:"path"`
}

// IngestResponse answers PUT /v1/broadcast/{id} once the input ended.
type IngestResponse struct {
	ID     string `json:"id"`
	Chunks uint64 `json:"chunks"`
	Bytes  uint64 `json:"bytes"`
}

// WatchRequest is the body of POST /v1/live/play.
type WatchRequest struct {
	ID            string `json:"id"`
	FindTimeoutMS int64  `json:"find_timeout_ms,omitempty"`
}

// WatchResponse answers POST /v1/live/play.
type WatchResponse struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Name string `json:"name"`
	Path string `json:"path"` // the HTTP stream, e.g. /stream/<id>
}

// Routes adds the live API.
func (s *Service) Routes(a *api.Server) {
	a.Handle("POST /v1/broadcast", http.HandlerFunc(s.apiBroadcast))
	a.Handle("PUT /v1/broadcast/{id}", http.HandlerFunc(s.apiIngest))
	a.Handle("POST /v1/live/play", http.HandlerFunc(s.apiWatch))
	a.Handle("DELETE /v1/live/{id}", http.HandlerFunc(s.apiLeave))
}

func (s *Service) pendingSource(id cid.Cid) *Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sources[id]
}

func (s *Service) apiBroadcast(w http.ResponseWriter, r *http.Request) {
	var req BroadcastRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		api.WriteError(w, http.StatusBadRequest, errors.New(`body must be JSON {"name": NAME}`))
		return
	}
	if req.Name == "" {
		req.Name = "live"
	}
	src, err := s.Broadcast(req.Name)
	if err != nil {
		api.WriteError(w, http.StatusConflict, err)
		return
	}
	s.mu.Lock()
	s.sources[src.st.id] = src
	s.mu.Unlock()
	api.WriteJSON(w, http.StatusOK, BroadcastResponse{ID: src.st.id.String(), Name: req.Name, Path: "/v1/broadcast/" + src.st.id.String()})
}

// apiIngest feeds the request body to the source until it ends, then ends
// the stream for every viewer.
func (s *Service) apiIngest(w http.ResponseWriter, r *http.Request) {
	id, kind, err := manifest.ParseID(r.PathValue("id"))
	if err != nil || kind != manifest.KindLive {
		api.WriteError(w, http.StatusBadRequest, errors.New("not a live stream ID"))
		return
	}
	src := s.pendingSource(id)
	if src == nil {
		api.WriteError(w, http.StatusNotFound, errors.New("no broadcast with that ID on this node (POST /v1/broadcast first)"))
		return
	}
	defer func() {
		s.mu.Lock()
		delete(s.sources, id)
		s.mu.Unlock()
		src.End()
	}()
	err = src.Ingest(r.Context(), r.Body, IngestOptions{Realtime: r.URL.Query().Get("realtime") == "1"})
	st := src.st.Stats()
	if err != nil && r.Context().Err() == nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, IngestResponse{ID: id.String(), Chunks: st.ChunksIn, Bytes: st.BytesIn})
}

func (s *Service) apiWatch(w http.ResponseWriter, r *http.Request) {
	var req WatchRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		api.WriteError(w, http.StatusBadRequest, errors.New(`body must be JSON {"id": STREAM_ID}`))
		return
	}
	id, kind, err := manifest.ParseID(strings.TrimSpace(req.ID))
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if kind != manifest.KindLive {
		api.WriteError(w, http.StatusBadRequest, errors.New("that ID names a file, not a live stream"))
		return
	}
	st, err := s.Watch(r.Context(), id, WatchOptions{FindTimeout: time.Duration(req.FindTimeoutMS) * time.Millisecond})
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, ErrNoPeers) {
			code = http.StatusNotFound
		}
		api.WriteError(w, code, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, WatchResponse{ID: id.String(), Kind: "live", Name: st.Stats().Name, Path: "/stream/" + id.String()})
}

func (s *Service) apiLeave(w http.ResponseWriter, r *http.Request) {
	id, _, err := manifest.ParseID(r.PathValue("id"))
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	st := s.Stream(id)
	if st == nil {
		api.WriteError(w, http.StatusNotFound, errors.New("not taking part in that stream"))
		return
	}
	st.Close()
	api.WriteJSON(w, http.StatusOK, map[string]string{"id": id.String()})
}

// ServeHTTP serves GET /stream/{id} for a live stream: the played stream
// from its latest start point, joining the stream first if needed.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, _, err := manifest.ParseID(r.PathValue("id"))
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	st := s.Stream(id)
	if st == nil {
		st, err = s.Watch(r.Context(), id, WatchOptions{})
		if err != nil {
			api.WriteError(w, http.StatusNotFound, err)
			return
		}
	}
	fan := st.HTTP()
	if fan == nil {
		api.WriteError(w, http.StatusBadRequest, errors.New("this node is the stream's source; play it on a viewer"))
		return
	}
	fan.ServeHTTP(w, r)
}
