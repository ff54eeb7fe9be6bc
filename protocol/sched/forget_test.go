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
