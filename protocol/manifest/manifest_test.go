package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestBuildDecodeRoundTrip(t *testing.T) {
	for _, tc := range []struct{ size, cs int }{
		{1, MinChunkSize},
		{MinChunkSize, MinChunkSize},
		{MinChunkSize + 1, MinChunkSize},
		{5*DefaultChunkSize - 7, 0},
		{3 * MaxChunkSize, MaxChunkSize},
	} {
		data := randBytes(tc.size, uint64(tc.size))
		m, err := Build(bytes.NewReader(data), "film é.ts", "video/mp2t", tc.cs)
		if err != nil {
			t.Fatal(err)
		}
		cs := tc.cs
		if cs == 0 {
			cs = DefaultChunkSize
		}
		wantN := (tc.size + cs - 1) / cs
		if m.Size() != int64(tc.size) || m.ChunkSize() != cs || m.NumChunks() != wantN ||
			m.Name() != "film é.ts" || m.Mime() != "video/mp2t" {
			t.Fatalf("%+v: got size %d cs %d n %d", tc, m.Size(), m.ChunkSize(), m.NumChunks())
		}
		if m.ID().Type() != CodecRaw || m.ID().Version() != 1 {
			t.Fatalf("bad ID %v", m.ID())
		}
		sum := sha256.Sum256(m.Bytes())
		if !bytes.Equal(m.ID().Hash()[2:], sum[:]) {
			t.Fatal("ID does not hash Bytes()")
		}
		var total int64
		for i := range m.NumChunks() {
			off := m.ChunkOffset(i)
			chunk := data[off : off+int64(m.ChunkLen(i))]
			if err := m.Verify(i, chunk); err != nil {
				t.Fatal(err)
			}
			total += int64(m.ChunkLen(i))
		}
		if total != m.Size() {
			t.Fatalf("chunk lengths sum to %d, size %d", total, m.Size())
		}
		d, err := Decode(m.Bytes(), m.ID())
		if err != nil {
			t.Fatal(err)
		}
		if !d.ID().Equals(m.ID()) || d.Size() != m.Size() || d.ChunkSize() != m.ChunkSize() ||
			d.Name() != m.Name() || d.Mime() != m.Mime() || !bytes.Equal(d.hashes, m.hashes) {
			t.Fatal("decoded manifest differs")
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	data := randBytes(3*MinChunkSize+100, 1)
	m, err := Build(bytes.NewReader(data), "x", "", MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(data[:MinChunkSize])
	corrupt[100] ^= 1
	var ce *ChunkError
	if err := m.Verify(0, corrupt); !errors.As(err, &ce) || ce.Index != 0 || !errors.Is(err, ErrChunkHash) {
		t.Fatalf("corrupt chunk: %v", err)
	}
	if err := m.Verify(3, data[3*MinChunkSize:]); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(3, append(bytes.Clone(data[3*MinChunkSize:]), 0)); !errors.Is(err, ErrChunkLength) {
		t.Fatalf("long last chunk: %v", err)
	}
	if err := m.Verify(1, data[:MinChunkSize]); !errors.Is(err, ErrChunkHash) {
		t.Fatalf("chunk 0 as chunk 1: %v", err)
	}
	for _, i := range []int{-1, 4, 1 << 40} {
		if err := m.Verify(i, nil); !errors.Is(err, ErrChunkIndex) {
			t.Fatalf("index %d: %v", i, err)
		}
		if m.ChunkLen(i) != 0 || m.ChunkHash(i) != nil {
			t.Fatalf("index %d has a length or hash", i)
		}
	}
}

type errReader struct{ n int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestBuildRejects(t *testing.T) {
	data := bytes.Repeat([]byte{1}, 100)
	for _, cs := range []int{-1, 1, 1000, 8 << 10, 3 << 14, 8 << 20} {
		if _, err := Build(bytes.NewReader(data), "x", "", cs); !errors.Is(err, ErrInvalid) {
			t.Errorf("chunk size %d: %v", cs, err)
		}
	}
	if _, err := Build(bytes.NewReader(nil), "x", "", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty file: %v", err)
	}
	if _, err := Build(bytes.NewReader(data), strings.Repeat("n", 256), "", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("long name: %v", err)
	}
	if _, err := Build(bytes.NewReader(data), "\xff", "", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad UTF-8: %v", err)
	}
	if _, err := Build(&errReader{n: 70000}, "x", "", 0); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("read error: %v", err)
	}
	if _, err := Build(bytes.NewReader(data), strings.Repeat("n", 255), "", 0); err != nil {
		t.Errorf("255-byte name: %v", err)
	}
}

// encode builds manifest bytes field by field, so tests can break the rules.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

func encode(fs ...field) []byte {
	var b []byte
	for _, f := range fs {
		b = protowire.AppendTag(b, f.num, f.typ)
		switch f.typ {
		case protowire.VarintType:
			b = protowire.AppendVarint(b, f.v)
		case protowire.BytesType:
			b = protowire.AppendBytes(b, f.b)
		case protowire.Fixed32Type:
			b = protowire.AppendFixed32(b, uint32(f.v))
		}
	}
	return b
}

func vf(n protowire.Number, v uint64) field { return field{n, protowire.VarintType, v, nil} }
func bf(n protowire.Number, b []byte) field { return field{n, protowire.BytesType, 0, b} }

var h32 = bytes.Repeat([]byte{0xab}, 32)

func validFields() []field {
	return []field{vf(1, 1), bf(2, []byte("n")), vf(3, 3*MinChunkSize), vf(4, MinChunkSize), bf(5, []byte("video/mp4")), bf(6, h32), bf(6, h32), bf(6, h32)}
}

func TestDecodeRules(t *testing.T) {
	ok := encode(validFields()...)
	if _, err := Decode(ok, idOf(ok)); err != nil {
		t.Fatal(err)
	}
	// Matches what proto.Unmarshal sees.
	var pm pb.Manifest
	if err := proto.Unmarshal(ok, &pm); err != nil || pm.Size != 3*MinChunkSize || len(pm.ChunkHashes) != 3 {
		t.Fatal("hand encoding is not a Manifest", err)
	}
	// Unknown fields are skipped (and hashed).
	unk := encode(append(validFields(), vf(99, 5), field{100, protowire.Fixed32Type, 7, nil})...)
	if _, err := Decode(unk, idOf(unk)); err != nil {
		t.Fatalf("unknown field: %v", err)
	}
	replace := func(i int, f field) []byte {
		fs := validFields()
		fs[i] = f
		return encode(fs...)
	}
	bad := map[string][]byte{
		"version 2":        replace(0, vf(1, 2)),
		"version 0":        encode(validFields()[1:]...),
		"version overflow": replace(0, vf(1, 1<<32+1)),
		"wire type":        replace(0, bf(1, []byte{1})),
		"long name":        replace(1, bf(2, bytes.Repeat([]byte{'a'}, 256))),
		"name UTF-8":       replace(1, bf(2, []byte{0xc3})),
		"size 0":           replace(2, vf(3, 0)),
		"too few hashes":   replace(2, vf(3, 3*MinChunkSize+1)),
		"too many hashes":  replace(2, vf(3, 2*MinChunkSize)),
		"huge size":        replace(2, vf(3, 1<<64-1)),
		"chunk size":       replace(3, vf(4, 20000)),
		"chunk size big":   replace(3, vf(4, 8<<20)),
		"hash 31 bytes":    replace(7, bf(6, h32[:31])),
		"hash 33 bytes":    replace(7, bf(6, append(h32, 0))),
		"truncated":        ok[:len(ok)-1],
		"bad tag":          append(bytes.Clone(ok), 0x80),
		"mime UTF-8":       replace(4, bf(5, []byte{0xff})),
	}
	for name, raw := range bad {
		if _, err := Decode(raw, idOf(raw)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestDecodeWrongID(t *testing.T) {
	m, err := Build(bytes.NewReader([]byte("hello")), "h", "text/plain", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Build(bytes.NewReader([]byte("hellp")), "h", "text/plain", 0)
	if _, err := Decode(m.Bytes(), other.ID()); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong ID: %v", err)
	}
	tampered := bytes.Clone(m.Bytes())
	tampered[len(tampered)-1] ^= 1
	if _, err := Decode(tampered, m.ID()); !errors.Is(err, ErrMismatch) {
		t.Fatalf("tampered: %v", err)
	}
	live := cid.NewCidV1(CodecLive, m.ID().Hash())
	if _, err := Decode(m.Bytes(), live); err == nil {
		t.Fatal("live ID accepted for a manifest")
	}
	if _, err := Decode(m.Bytes(), cid.Undef); err == nil {
		t.Fatal("undefined ID accepted")
	}
	big := make([]byte, wire.MaxManifest+1)
	if _, err := Decode(big, idOf(big)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversize: %v", err)
	}
	// Decode copies its input.
	raw := bytes.Clone(m.Bytes())
	d, err := Decode(raw, m.ID())
	if err != nil {
		t.Fatal(err)
	}
	raw[0] ^= 0xff
	if !bytes.Equal(d.Bytes(), m.Bytes()) {
		t.Fatal("Decode kept a reference to its input")
	}
}

func TestParseID(t *testing.T) {
	m, err := Build(bytes.NewReader([]byte("hello")), "h", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := ParseID(" " + m.ID().String() + "\n")
	if err != nil || k != KindFile || !c.Equals(m.ID()) {
		t.Fatalf("file ID: %v %v %v", c, k, err)
	}
	live := cid.NewCidV1(CodecLive, m.ID().Hash())
	if _, k, err := ParseID(live.String()); err != nil || k != KindLive {
		t.Fatalf("live ID: %v %v", k, err)
	}
	for _, s := range []string{"", "hello", "bafk", m.ID().String()[:20], cid.NewCidV0(m.ID().Hash()).String()} {
		if _, _, err := ParseID(s); err == nil || !strings.HasPrefix(err.Error(), "malformed ID") {
			t.Errorf("%q: %v", s, err)
		}
	}
	dagpb := cid.NewCidV1(0x70, m.ID().Hash())
	if _, _, err := ParseID(dagpb.String()); err == nil || !strings.HasPrefix(err.Error(), "unknown content type") {
		t.Errorf("dag-pb: %v", err)
	}
	h, _ := multihash.Sum([]byte("x"), multihash.SHA2_512, -1)
	if _, _, err := ParseID(cid.NewCidV1(CodecRaw, h).String()); err == nil || !strings.HasPrefix(err.Error(), "malformed ID") {
		t.Errorf("sha512: %v", err)
	}
}

func TestMimeFromName(t *testing.T) {
	for name, want := range map[string]string{
		"a.ts": "video/mp2t", "/x/B.M2TS": "video/mp2t", "a.mp4": "video/mp4", "a.m4v": "video/mp4",
		"a.mkv": "video/x-matroska", "a.webm": "video/webm", "a.mov": "video/quicktime",
		"a.avi": "video/x-msvideo", "a.flv": "video/x-flv", "a.ogv": "video/ogg",
		"a": "application/octet-stream", "a.txt": "application/octet-stream", "ts": "application/octet-stream",
	} {
		if got := MimeFromName(name); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	data := randBytes(16<<20, 7)
	for _, cs := range []int{64 << 10, 256 << 10, 1 << 20} {
		b.Run(byteSize(cs), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Build(bytes.NewReader(data), "bench", "", cs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}
