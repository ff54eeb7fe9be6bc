package live

import "testing"

// The stall watchdog's view of a parent: bytes read since the last whole
// message or the last look are a (large) message on its way; none, a
// silence.
func TestSilence(t *testing.T) {
	var s silence
	// Heartbeats came (whole messages, 300 bytes read in all), then
	// nothing: the first look is already a silence. (It was not: the bytes
	// of the messages since the last look counted as arriving, and a dead
	// parent was noticed after two stall timeouts.)
	s.message(100)
	s.message(300)
	if !s.silent(300) {
		t.Fatal("no byte since the last whole message, yet not silent")
	}
	// A large chunk paced out slowly: bytes keep coming between looks.
	s.message(400)
	if s.silent(9000) {
		t.Fatal("a chunk arriving (8,600 bytes since the last message) taken as silence")
	}
	if s.silent(20000) {
		t.Fatal("still arriving, taken as silence")
	}
	if !s.silent(20000) {
		t.Fatal("nothing since the last look, yet not silent")
	}
}
