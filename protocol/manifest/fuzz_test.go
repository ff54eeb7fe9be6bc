package manifest

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"google.golang.org/protobuf/proto"
)

func FuzzDecode(f *testing.F) {
	f.Add(encode(validFields()...))
	f.Add(encode(append(validFields(), vf(99, 1))...))
	f.Add(encode(validFields()[1:]...))
	f.Add(encode(vf(1, 1), vf(3, 1), vf(4, MaxChunkSize), bf(6, h32)))
	f.Add(encode(vf(1, 1), vf(3, 1<<64-1), vf(4, MinChunkSize), bf(6, h32)))
	m, _ := Build(bytes.NewReader(randBytes(100000, 3)), "seed.mkv", "video/x-matroska", MinChunkSize)
	f.Add(m.Bytes())
	f.Add([]byte{})
	f.Add([]byte{0x32, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, raw []byte) {
		// Always the right ID: the point is to reach the parser.
		m, err := Decode(raw, idOf(raw))
		if err != nil {
			return
		}
		// What we accept, protobuf reads the same way.
		var pm pb.Manifest
		if err := proto.Unmarshal(raw, &pm); err != nil {
			t.Fatalf("accepted bytes protobuf rejects: %v", err)
		}
		if pm.Version != 1 || pm.Name != m.Name() || pm.Mime != m.Mime() || int64(pm.Size) != m.Size() ||
			int(pm.ChunkSize) != m.ChunkSize() || len(pm.ChunkHashes) != m.NumChunks() {
			t.Fatalf("protobuf disagrees: %v", &pm)
		}
		for i, h := range pm.ChunkHashes {
			if !bytes.Equal(h, m.ChunkHash(i)) {
				t.Fatalf("hash %d differs", i)
			}
		}
		var total int64
		for i := range m.NumChunks() {
			l := m.ChunkLen(i)
			if l <= 0 || l > m.ChunkSize() {
				t.Fatalf("chunk %d length %d", i, l)
			}
			total += int64(l)
		}
		if total != m.Size() || len(m.hashes) != m.NumChunks()*sha256.Size {
			t.Fatalf("lengths sum to %d, size %d", total, m.Size())
		}
	})
}
