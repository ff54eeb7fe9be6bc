package vod

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hivecast/hivecast/node/api"
	"github.com/hivecast/hivecast/node/store"
	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/ipfs/go-cid"
)

// ShareRequest is the body of POST /v1/share.
type ShareRequest struct {
	Path      string `json:"path"`
	Name      string `json:"name,omitempty"`
	ChunkSize int    `json:"chunk_size,omitempty"`
}

// ShareResponse answers POST /v1/share.
type ShareResponse struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	Chunks    int    `json:"chunks"`
	ChunkSize int    `json:"chunk_size"`
	Mime      string `json:"mime"`
}

// PlayRequest is the body of POST /v1/play.
type PlayRequest struct {
	ID      string `json:"id"`
	NoStore bool   `json:"no_store,omitempty"`
	// FindTimeoutMS bounds the wait for a first provider (default 20 s).
	FindTimeoutMS int64 `json:"find_timeout_ms,omitempty"`
}

// PlayResponse answers POST /v1/play.
type PlayResponse struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Path string `json:"path"` // stream path on the API server, e.g. /stream/<id>
	Name string `json:"name"`
	Size int64  `json:"size"`
	Mime string `json:"mime"`
}

// Routes adds the service's API routes.
func (s *Service) Routes(a *api.Server) {
	a.Handle("POST /v1/share", http.HandlerFunc(s.apiShare))
	a.Handle("DELETE /v1/share/{id}", http.HandlerFunc(s.apiUnshare))
	a.Handle("GET /v1/ls", http.HandlerFunc(s.apiLs))
	a.Handle("POST /v1/play", http.HandlerFunc(s.apiPlay))
	a.Handle("GET /v1/play/{id}", http.HandlerFunc(s.apiPlayStatus))
	a.Handle("GET /stream/{id}", http.HandlerFunc(s.apiStream))
	a.Handle("HEAD /stream/{id}", http.HandlerFunc(s.apiStream))
}

func (s *Service) apiShare(w http.ResponseWriter, r *http.Request) {
	var req ShareRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Path == "" {
		api.WriteError(w, http.StatusBadRequest, errors.New(`body must be JSON {"path": FILE}`))
		return
	}
	m, err := s.Share(req.Path, req.Name, req.ChunkSize)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, ShareResponse{ID: m.ID().String(), Name: m.Name(), Size: m.Size(), Chunks: m.NumChunks(), ChunkSize: m.ChunkSize(), Mime: m.Mime()})
}

func parseFileID(w http.ResponseWriter, s string) (cid.Cid, bool) {
	id, kind, err := manifest.ParseID(s)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err)
		return cid.Undef, false
	}
	if kind != manifest.KindFile {
		api.WriteError(w, http.StatusBadRequest, errors.New("that ID names a live stream, not a file"))
		return cid.Undef, false
	}
	return id, true
}

func (s *Service) apiUnshare(w http.ResponseWriter, r *http.Request) {
	id, ok := parseFileID(w, r.PathValue("id"))
	if !ok {
		return
	}
	if err := s.Unshare(id); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, store.ErrNotShared) {
			code = http.StatusNotFound
		}
		api.WriteError(w, code, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{"id": id.String()})
}

func (s *Service) apiLs(w http.ResponseWriter, r *http.Request) {
	items := s.st.List()
	if items == nil {
		items = []store.Item{}
	}
	api.WriteJSON(w, http.StatusOK, items)
}

func (s *Service) apiPlay(w http.ResponseWriter, r *http.Request) {
	var req PlayRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		api.WriteError(w, http.StatusBadRequest, errors.New(`body must be JSON {"id": ID}`))
		return
	}
	id, ok := parseFileID(w, strings.TrimSpace(req.ID))
	if !ok {
		return
	}
	ss, err := s.PlayWithin(r.Context(), id, req.NoStore, time.Duration(req.FindTimeoutMS)*time.Millisecond)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, ErrNoProviders) {
			code = http.StatusNotFound
		}
		api.WriteError(w, code, err)
		return
	}
	m := ss.Manifest()
	api.WriteJSON(w, http.StatusOK, PlayResponse{ID: id.String(), Kind: "file", Path: "/stream/" + id.String(), Name: m.Name(), Size: m.Size(), Mime: m.Mime()})
}

func (s *Service) apiPlayStatus(w http.ResponseWriter, r *http.Request) {
	id, ok := parseFileID(w, r.PathValue("id"))
	if !ok {
		return
	}
	ss := s.Session(id)
	if ss == nil {
		api.WriteError(w, http.StatusNotFound, errors.New("not playing that ID"))
		return
	}
	api.WriteJSON(w, http.StatusOK, ss.Stats())
}

// apiStream serves the file with HTTP Range support, starting a session if
// none runs (a player may open the URL directly).
func (s *Service) apiStream(w http.ResponseWriter, r *http.Request) {
	if _, kind, err := manifest.ParseID(r.PathValue("id")); err == nil && kind == manifest.KindLive && s.cfg.Live != nil {
		s.cfg.Live.ServeHTTP(w, r) // live streams share the /stream/ URL space
		return
	}
	id, ok := parseFileID(w, r.PathValue("id"))
	if !ok {
		return
	}
	ss := s.Session(id)
	if ss == nil {
		var err error
		ss, err = s.Play(r.Context(), id, r.URL.Query().Get("store") == "0")
		if err != nil {
			code := http.StatusBadGateway
			if errors.Is(err, ErrNoProviders) {
				code = http.StatusNotFound
			}
			api.WriteError(w, code, err)
			return
		}
	}
	ss.VOD().ServeHTTP(w, r)
}

// Sessions lists running sessions' stats.
func (s *Service) Sessions() []SessionStats {
	s.mu.Lock()
	list := make([]*Session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	out := make([]SessionStats, 0, len(list))
	for _, ss := range list {
		out = append(out, ss.Stats())
	}
	return out
}
