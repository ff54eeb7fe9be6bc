package live

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	mh "github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"
)

// testKey returns a deterministic Ed25519 key.
func testKey(t testing.TB, seed byte) crypto.PrivKey {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func testChunkData(n int) []byte {
	d := make([]byte, n*PacketSize)
	for i := 0; i < len(d); i += PacketSize {
		d[i] = syncByte
		d[i+1], d[i+2] = 0x01, 0x00
		for k := 4; k < PacketSize; k++ {
			d[i+k] = byte(i + k)
		}
	}
	return d
}

func TestStreamIDPreimage(t *testing.T) {
	priv := testKey(t, 1)
	id, err := StreamID(priv.GetPublic(), "camera 1")
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := crypto.MarshalPublicKey(priv.GetPublic())
	pre := append([]byte("hivecast-live-v1\x00"), kb...)
	pre = append(pre, 0)
	pre = append(pre, "camera 1"...)
	sum := sha256.Sum256(pre)
	m, _ := mh.Encode(sum[:], mh.SHA2_256)
	if want := cid.NewCidV1(0x300001, m); !id.Equals(want) {
		t.Fatalf("id %v, want %v", id, want)
	}
	if id.Type() != CodecLive || id.Version() != 1 {
		t.Fatal("wrong CID prefix")
	}
	// Golden value (seed 0x01 repeated, name "camera 1"), so that other
	// implementations can check theirs.
	t.Logf("golden stream ID: %s key %x", id, kb)
	if got := id.String(); got != goldenID {
		t.Fatalf("stream ID %s, golden %s", got, goldenID)
	}
	other, _ := StreamID(priv.GetPublic(), "camera 2")
	if other.Equals(id) {
		t.Fatal("names do not separate IDs")
	}
}

func TestNonEd25519Rejected(t *testing.T) {
	priv, pub, err := crypto.GenerateSecp256k1Key(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StreamID(pub, "x"); !errors.Is(err, ErrKeyType) {
		t.Fatalf("StreamID: %v", err)
	}
	if _, err := NewSigner(priv, "x"); !errors.Is(err, ErrKeyType) {
		t.Fatalf("NewSigner: %v", err)
	}
	// An info with a secp256k1 key and an ID computed the same way.
	kb, _ := crypto.MarshalPublicKey(pub)
	id := streamID(kb, "x")
	if _, err := VerifyInfo(id, &pb.StreamInfo{Version: 1, PublicKey: kb, Name: "x", Mime: MIMETypeTS}); !errors.Is(err, ErrKeyType) {
		t.Fatalf("VerifyInfo: %v", err)
	}
}

func TestVerifyInfoHostile(t *testing.T) {
	s, err := NewSigner(testKey(t, 2), "stream")
	if err != nil {
		t.Fatal(err)
	}
	good := s.Info(2_000_000, 100)
	if pub, err := VerifyInfo(s.ID(), good); err != nil || !pub.Equals(testKey(t, 2).GetPublic()) {
		t.Fatalf("good info: %v", err)
	}
	other, _ := NewSigner(testKey(t, 3), "stream")
	rawCID := cid.NewCidV1(cid.Raw, s.ID().Hash())
	sha1, _ := mh.Sum([]byte("x"), mh.SHA1, -1)
	kb := good.PublicKey
	nonCanon := append(bytes.Clone(kb), 0x18, 0x01) // an unknown varint field appended
	for name, tc := range map[string]struct {
		id  cid.Cid
		mut func(*pb.StreamInfo)
	}{
		"nil":           {s.ID(), nil},
		"undef id":      {cid.Undef, func(*pb.StreamInfo) {}},
		"raw codec":     {rawCID, func(*pb.StreamInfo) {}},
		"sha1":          {cid.NewCidV1(CodecLive, sha1), func(*pb.StreamInfo) {}},
		"other stream":  {other.ID(), func(*pb.StreamInfo) {}},
		"version":       {s.ID(), func(i *pb.StreamInfo) { i.Version = 2 }},
		"renamed":       {s.ID(), func(i *pb.StreamInfo) { i.Name = "stream2" }},
		"other key":     {s.ID(), func(i *pb.StreamInfo) { i.PublicKey = other.Info(0, 0).PublicKey }},
		"no key":        {s.ID(), func(i *pb.StreamInfo) { i.PublicKey = nil }},
		"garbage key":   {s.ID(), func(i *pb.StreamInfo) { i.PublicKey = []byte{1, 2, 3} }},
		"huge key":      {s.ID(), func(i *pb.StreamInfo) { i.PublicKey = make([]byte, 1<<20) }},
		"noncanonical":  {streamID(nonCanon, "stream"), func(i *pb.StreamInfo) { i.PublicKey = nonCanon }},
		"long name":     {s.ID(), func(i *pb.StreamInfo) { i.Name = strings.Repeat("a", 256) }},
		"bad utf8":      {s.ID(), func(i *pb.StreamInfo) { i.Name = "\xff" }},
		"mime":          {s.ID(), func(i *pb.StreamInfo) { i.Mime = "video/mp4" }},
		"chunk millis":  {s.ID(), func(i *pb.StreamInfo) { i.ChunkMillis = 1 << 30 }},
		"truncated key": {s.ID(), func(i *pb.StreamInfo) { i.PublicKey = kb[:len(kb)-1] }},
		"key with 33 B": {s.ID(), func(i *pb.StreamInfo) { i.PublicKey = append(bytes.Clone(kb), 0) }},
	} {
		var info *pb.StreamInfo
		if tc.mut != nil {
			info = proto.Clone(good).(*pb.StreamInfo)
			tc.mut(info)
		}
		if _, err := VerifyInfo(tc.id, info); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := NewVerifier(tc.id, info); err == nil {
			t.Errorf("%s: verifier created", name)
		}
	}
}

func signedTestChunk(t testing.TB, s *Signer, seq uint64, packets int, flags uint32) *pb.LiveChunk {
	t.Helper()
	c := &pb.LiveChunk{Seq: seq, CaptureUnixMicros: -12345, Flags: flags, Data: testChunkData(packets)}
	if flags&FlagStart != 0 {
		c.Data[1], c.Data[2] = 0, 0
	}
	if flags&FlagEnd != 0 {
		c.Data = nil
	}
	if err := s.Sign(c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignVerify(t *testing.T) {
	s, _ := NewSigner(testKey(t, 4), "s")
	v, err := NewVerifier(s.ID(), s.Info(0, 100))
	if err != nil {
		t.Fatal(err)
	}
	c := signedTestChunk(t, s, 7, 20, FlagStart)
	if err := v.Verify(c); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(signedTestChunk(t, s, 8, 0, FlagEnd)); err != nil {
		t.Fatalf("end of stream: %v", err)
	}
	// The signature covers exactly the documented message.
	msg := []byte("hivecast-live-chunk-v1")
	msg = append(msg, s.ID().Bytes()...)
	msg = binary.BigEndian.AppendUint64(msg, 7)
	msg = binary.BigEndian.AppendUint64(msg, uint64(0xffffffffffffffff-12345+1))
	msg = binary.BigEndian.AppendUint32(msg, FlagStart)
	sum := sha256.Sum256(c.Data)
	msg = append(msg, sum[:]...)
	if ok, err := testKey(t, 4).GetPublic().Verify(msg, c.Signature); !ok || err != nil {
		t.Fatal("signature is not over the documented message")
	}

	mutations := map[string]func(*pb.LiveChunk){
		"seq":       func(c *pb.LiveChunk) { c.Seq++ },
		"capture":   func(c *pb.LiveChunk) { c.CaptureUnixMicros++ },
		"flags":     func(c *pb.LiveChunk) { c.Flags = 0 },
		"data":      func(c *pb.LiveChunk) { c.Data[100] ^= 1 },
		"data last": func(c *pb.LiveChunk) { c.Data[len(c.Data)-1] ^= 0x80 },
		"truncated": func(c *pb.LiveChunk) { c.Data = c.Data[:len(c.Data)-PacketSize] },
		"sig":       func(c *pb.LiveChunk) { c.Signature[5] ^= 1 },
		"sig short": func(c *pb.LiveChunk) { c.Signature = c.Signature[:63] },
		"sig long":  func(c *pb.LiveChunk) { c.Signature = append(c.Signature, 0) },
		"no sig":    func(c *pb.LiveChunk) { c.Signature = nil },
		"end flag":  func(c *pb.LiveChunk) { c.Flags |= FlagEnd },
		"unknown":   func(c *pb.LiveChunk) { c.Flags |= 4 },
		"not 188":   func(c *pb.LiveChunk) { c.Data = append(c.Data, 0x47) },
		"no sync":   func(c *pb.LiveChunk) { c.Data[188] = 0 },
		"no PAT":    func(c *pb.LiveChunk) { c.Data[2] = 1 },
		"empty":     func(c *pb.LiveChunk) { c.Data = nil },
		"too big":   func(c *pb.LiveChunk) { c.Data = testChunkData(MaxChunkData/PacketSize + 1) },
	}
	for name, mut := range mutations {
		m := proto.Clone(c).(*pb.LiveChunk)
		mut(m)
		if err := v.Verify(m); err == nil {
			t.Errorf("%s: modified chunk accepted", name)
		}
	}
	// Another stream's verifier rejects the chunk.
	s2, _ := NewSigner(testKey(t, 4), "other")
	v2, _ := NewVerifier(s2.ID(), s2.Info(0, 0))
	if err := v2.Verify(c); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("cross-stream: %v", err)
	}
	if err := v.Verify(nil); err == nil {
		t.Fatal("nil accepted")
	}
	// Sign refuses malformed chunks.
	for _, bad := range []*pb.LiveChunk{nil, {Data: []byte{1}}, {Flags: 8, Data: testChunkData(1)}, {Flags: FlagEnd, Data: testChunkData(1)}} {
		if err := s.Sign(bad); err == nil {
			t.Errorf("signed %v", bad)
		}
	}
	// Largest chunk: 1 MiB rounded down to whole packets.
	big := &pb.LiveChunk{Data: testChunkData(MaxChunkData / PacketSize)}
	if err := s.Sign(big); err != nil || v.Verify(big) != nil {
		t.Fatalf("max chunk: %v", err)
	}
}

func TestSignerConcurrentUse(t *testing.T) {
	s, _ := NewSigner(testKey(t, 5), "s")
	v, _ := NewVerifier(s.ID(), s.Info(0, 0))
	done := make(chan error)
	for g := range 4 {
		go func() {
			var err error
			for i := range 50 {
				c := &pb.LiveChunk{Seq: uint64(g*100 + i), Data: testChunkData(3)}
				if err = s.Sign(c); err == nil {
					err = v.Verify(c)
				}
				if err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func benchSign(b *testing.B, size int) {
	s, _ := NewSigner(testKey(b, 6), "bench")
	c := &pb.LiveChunk{Data: testChunkData(size / PacketSize)}
	b.SetBytes(int64(len(c.Data)))
	b.ReportAllocs()
	for b.Loop() {
		c.Seq++
		if err := s.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

func benchVerify(b *testing.B, size int) {
	s, _ := NewSigner(testKey(b, 6), "bench")
	v, _ := NewVerifier(s.ID(), s.Info(0, 0))
	c := &pb.LiveChunk{Data: testChunkData(size / PacketSize)}
	if err := s.Sign(c); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(c.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(c); err != nil {
			b.Fatal(err)
		}
	}
}

// Chunk data sizes: 16 KiB and 64 KiB rounded down to whole packets
// (16356 and 65424 bytes).
func BenchmarkSign(b *testing.B) {
	for _, kib := range []int{16, 64} {
		b.Run(fmt.Sprintf("%dKiB", kib), func(b *testing.B) { benchSign(b, kib<<10) })
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, kib := range []int{16, 64} {
		b.Run(fmt.Sprintf("%dKiB", kib), func(b *testing.B) { benchVerify(b, kib<<10) })
	}
}
