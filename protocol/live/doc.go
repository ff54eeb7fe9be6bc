// Package live is the pure core of hivecast live broadcasting: stream IDs,
// chunk signing and verification, an MPEG-TS chunker and a pacer that
// makes a recorded file act as a live source. It does no I/O, starts no
// goroutines and reads no clock except through the Clock it is given.
//
// # Stream ID
//
// A live stream is named by its publisher's Ed25519 key and a name (UTF-8,
// at most 255 bytes). Its ID is
//
//	CIDv1(codec 0x300001 hivecast-live,
//	      multihash sha2-256("hivecast-live-v1" || 0x00 || public_key || 0x00 || name))
//
// where public_key is the key in libp2p's protobuf encoding
// (crypto.MarshalPublicKey; 36 bytes for Ed25519: 08 01 12 20 || 32-byte key).
// Only Ed25519 keys are valid. A StreamInfo received from a peer is
// accepted only if: the ID is a CIDv1 with codec 0x300001 and a sha2-256
// multihash; version is 1; public_key is at most 64 bytes, decodes to an
// Ed25519 key and is its canonical encoding (re-encoding gives the same
// bytes); name is valid UTF-8 of at most 255 bytes; mime is "video/mp2t";
// chunk_millis is at most 60000; and the ID recomputed from public_key and
// name equals the ID asked for. bitrate and chunk_millis are not covered by
// the ID: they are hints that a relaying peer can alter.
//
// # Live chunks
//
// LiveChunk.flags has two defined bits: 0x1 Start (the chunk begins with a
// PAT packet, then a PMT packet, then, possibly after other non-video
// packets, a random access point of the video stream) and 0x2 End (end of
// stream). Any other bit makes the chunk invalid. A chunk is well formed if:
// an End chunk has empty data and not the Start bit; any other chunk has 1
// to 1 MiB (1048576 bytes) of data, a multiple of 188 bytes, every 188-byte
// packet beginning with the sync byte 0x47, and a Start chunk's first
// packet has PID 0. The signature is exactly 64 bytes: the Ed25519
// signature (RFC 8032, pure Ed25519) by the stream's key of
//
//	"hivecast-live-chunk-v1"          22 bytes, ASCII
//	|| stream ID                      binary CID (the bytes of the CID, not a string)
//	|| seq                            8 bytes, unsigned, big-endian
//	|| capture_unix_micros            8 bytes, two's complement, big-endian
//	|| flags                          4 bytes, big-endian
//	|| sha2-256(data)                 32 bytes
//
// A receiver checks the shape first, then the signature, and drops the
// chunk (and does not forward it) if either fails. seq starts at 0 for a
// stream's first chunk and increases by one per chunk.
//
// # Chunking
//
// The Chunker parses the transport stream (ISO/IEC 13818-1): sync is
// acquired at three 0x47 bytes 188 bytes apart; a packet is passed on only
// if the next packet's sync byte follows (or the input ends), otherwise it
// is dropped and the parser hunts for sync again. The first program of the
// PAT gives the PMT PID; the first elementary stream of type 0x1b (H.264),
// 0x24 (HEVC) or 0x02 (MPEG-2 video) is the video PID; PAT and PMT
// sections must fit in one packet and pass their CRC-32. A random access
// point is a video packet that starts a PES whose first packet carries
// random_access_indicator or an H.264 IDR (NAL type 5) or SPS (7), an HEVC
// IRAP (16..23), VPS (32) or SPS (33), or an MPEG-2 sequence header; or a
// video packet with random_access_indicator inside a PES that did not start
// at one. A new chunk begins at every random access point (Start); if the
// packets right before it are the latest PAT and PMT followed only by
// non-video packets, they move into the new chunk, otherwise copies of the
// latest PAT and PMT are put in front. A new chunk also begins at a PCR
// packet once the PCR time since the chunk's first packet reaches the
// target duration (default 100 ms), and before a packet that would make the
// chunk exceed the size limit (default 65424 bytes, 348 packets). Chunks
// hold whole packets in input order; apart from the PAT/PMT copies they are
// exactly the input.
//
// Media time comes from the PCR (27 MHz) of the program's PCR PID: 0 at the
// first PCR, then advancing by the PCR difference (modulo 2^33*300). A PCR
// that goes backwards, jumps ahead by more than 1 s, or carries
// discontinuity_indicator is a discontinuity: media time then advances by
// the last regular PCR interval (at most 100 ms), so it stays monotonic and
// a looped file continues seamlessly. A chunk's media time is that of its
// first input packet, interpolated by packet position between the last PCR
// before it and the first PCR in it, or extrapolated at the last measured
// rate when the chunk has no PCR, and never less than the previous chunk's.
//
// # Pacing
//
// The Pacer releases a chunk at anchor wall time + (media time - anchor
// media time). It re-anchors when a chunk would be due more than MaxLead
// (default 1 s) ahead of now or MaxLag (default 1 s) behind now, or when
// media time goes backwards.
package live
