package sched

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// checkInvariants recomputes the scheduler's bookkeeping from scratch.
func checkInvariants(t testing.TB, s *Scheduler) {
	t.Helper()
	n := s.cfg.NumChunks
	copies := make([]int, n)
	inflight := map[*peer]int{}
	live := 0
	for _, r := range s.live {
		if r.done {
			continue
		}
		live++
		if s.reqs[r.id] != r {
			t.Fatalf("live request %d not in the map", r.id)
		}
		if s.peers[r.p.id] != r.p {
			t.Fatalf("live request %d on a removed peer %s", r.id, r.p.id)
		}
		for k := 0; k < r.count; k++ {
			if r.got&(1<<uint(k)) == 0 {
				copies[r.first+k]++
				inflight[r.p]++
			}
		}
	}
	if live != len(s.reqs) {
		t.Fatalf("%d live requests, %d in the map", live, len(s.reqs))
	}
	for _, p := range s.order {
		if p.inflight != inflight[p] {
			t.Fatalf("peer %s inflight %d, counted %d", p.id, p.inflight, inflight[p])
		}
	}
	held := 0
	for i := 0; i < n; i++ {
		h := s.have.get(i)
		if h {
			held++
		}
		if int(s.copies[i]) != copies[i] {
			t.Fatalf("chunk %d copies %d, counted %d", i, s.copies[i], copies[i])
		}
		if w := !h && copies[i] == 0; w != s.wanted.get(i) {
			t.Fatalf("chunk %d wanted=%v, want %v", i, s.wanted.get(i), w)
		}
	}
	if held != s.held {
		t.Fatalf("held %d, counted %d", s.held, held)
	}
	if c := s.wanted.next(s.playhead, min(s.scanHi, n)); c >= 0 {
		t.Fatalf("wanted chunk %d below scanHi %d (playhead %d)", c, s.scanHi, s.playhead)
	}
	if c := s.wanted.next(0, min(s.scanLo, n)); c >= 0 {
		t.Fatalf("wanted chunk %d below scanLo %d", c, s.scanLo)
	}
}

// TestRandomCallsKeepInvariants drives the scheduler with random but
// well-formed events and checks its bookkeeping after every call.
func TestRandomCallsKeepInvariants(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			cfg := Config{NumChunks: 300, ChunkSize: 64 * kib, MaxRangeLen: 1 + rng.IntN(16), Window: 4 + rng.IntN(16), Store: seed%2 == 0}
			s := New(cfg, t0)
			now := t0
			type open struct {
				Request
				next int
			}
			var opens []*open
			ids := []PeerID{"a", "b", "c", "d", "e"}
			for step := 0; step < 3000; step++ {
				now = now.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
				switch x := rng.IntN(100); {
				case x < 5:
					s.AddPeer(ids[rng.IntN(len(ids))], now)
				case x < 7:
					s.RemovePeer(ids[rng.IntN(len(ids))], now)
				case x < 8:
					s.Ban(ids[rng.IntN(len(ids))], now)
				case x < 12:
					s.Seek(rng.IntN(cfg.NumChunks), now)
				case x < 14:
					s.SetHave(rng.IntN(cfg.NumChunks))
				case x < 80 && len(opens) > 0:
					j := rng.IntN(len(opens))
					o := opens[j]
					switch y := rng.IntN(20); {
					case y < 16 && o.next < o.Count:
						s.OnChunk(o.ID, o.Peer, o.First+o.next, cfg.ChunkSize, now)
						o.next++
					case y < 18:
						s.OnDone(o.ID, o.Peer, now)
						opens = append(opens[:j], opens[j+1:]...)
					default:
						s.OnError(o.ID, o.Peer, Kind(1+rng.IntN(5)), now)
						opens = append(opens[:j], opens[j+1:]...)
					}
				default:
					if w := s.NextWake(now); !w.IsZero() && rng.IntN(2) == 0 {
						now = w
					}
				}
				checkInvariants(t, s)
				for _, r := range s.Next(now) {
					if r.Count < 1 || r.Count > s.cfg.MaxRangeLen || r.First < 0 || r.First+r.Count > cfg.NumChunks {
						t.Fatalf("bad request %+v", r)
					}
					if !cfg.Store && (r.First < s.playhead || r.First+r.Count > s.playhead+s.cfg.Lookahead) {
						t.Fatalf("no-store request %+v outside [%d, +%d)", r, s.playhead, s.cfg.Lookahead)
					}
					opens = append(opens, &open{Request: r})
				}
				checkInvariants(t, s)
			}
		})
	}
}

func TestSimInvariantsThroughout(t *testing.T) {
	sm := newSim(t, Config{NumChunks: 150, ChunkSize: 64 * kib, ChunkDuration: ms(100), Store: true}, mixedPeers(), true)
	sm.check = func() { checkInvariants(t, sm.s) }
	sm.at(4*time.Second, func() { sm.seek(100) })
	sm.run(10*time.Minute, sm.s.Complete)
	sm.checkOnce()
}
