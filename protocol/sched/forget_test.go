package sched

import (
	"testing"
	"time"
)

// A chunk the player dropped (bounded memory) is fetched again after Forget.
func TestForgetRefetches(t *testing.T) {
	now := time.Unix(0, 0)
	s := New(Config{NumChunks: 8, Store: true}, now)
	s.AddPeer("a", now)
	for !s.Complete() {
		reqs := s.Next(now)
		if len(reqs) == 0 {
			t.Fatal("no requests while incomplete")
		}
		for _, r := range reqs {
			for k := range r.Count {
				s.OnChunk(r.ID, r.Peer, r.First+k, 256<<10, now)
			}
			s.OnDone(r.ID, r.Peer, now)
		}
		now = now.Add(100 * time.Millisecond)
	}
	s.Forget(3)
	s.Forget(3) // idempotent
	if s.Complete() || s.Has(3) {
		t.Fatal("forgotten chunk still held")
	}
	reqs := s.Next(now)
	if len(reqs) == 0 || reqs[0].First != 3 {
		t.Fatalf("forgotten chunk not requested again: %+v", reqs)
	}
	s.OnChunk(reqs[0].ID, reqs[0].Peer, 3, 256<<10, now)
	if !s.Complete() {
		t.Fatal("not complete after the refetch")
	}
}

// A provider that answered NOT_FOUND (it was still downloading) is asked
// again once the caller says it may have gained chunks.
func TestForgetMissingAsksAgain(t *testing.T) {
	now := time.Unix(0, 0)
	s := New(Config{NumChunks: 4, ChunkSize: 1024, Store: true}, now)
	s.AddPeer("a", now)
	reqs := s.Next(now)
	if len(reqs) == 0 {
		t.Fatal("no request")
	}
	for _, r := range reqs {
		s.OnError(r.ID, r.Peer, ErrNotFound, now)
	}
	now = now.Add(time.Minute) // past any backoff
	if got := s.Next(now); len(got) != 0 {
		t.Fatalf("asked the peer again for chunks it lacks: %+v", got)
	}
	s.ForgetMissing("a")
	if got := s.Next(now); len(got) == 0 {
		t.Fatal("not asked again after ForgetMissing")
	}
}
