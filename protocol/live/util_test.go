package live

import "github.com/hivecast/hivecast/protocol/wire/pb"

// lc converts a chunker chunk to an unsigned wire chunk.
func lc(c Chunk) *pb.LiveChunk {
	f := uint32(0)
	if c.Start {
		f |= FlagStart
	}
	return &pb.LiveChunk{Seq: c.Seq, CaptureUnixMicros: int64(c.MediaTime / 1000), Flags: f, Data: c.Data}
}
