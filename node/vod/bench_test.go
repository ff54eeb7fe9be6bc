package vod_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/bwlimit"
	"github.com/hivecast/hivecast/node/daemon"
)

// Benchmarks are opt-in: go test -run '^$' -bench . -benchtime 1x ./node/vod
// HIVECAST_BENCH_MIB sets the file size (default 256).

func benchSize() int {
	if v, err := strconv.Atoi(os.Getenv("HIVECAST_BENCH_MIB")); err == nil && v > 0 {
		return v * mib
	}
	return 256 * mib
}

const benchCap = "40Mbit"

// BenchmarkDownload: a file from 1 and from 4 providers on loopback, each
// provider's upload capped at 40 Mbit/s. Reports the rate and its share of
// the sum of the caps.
func BenchmarkDownload(b *testing.B) {
	for _, chunkKiB := range []int{256} {
		for _, np := range []int{1, 4} {
			b.Run(fmt.Sprintf("providers=%d/chunk=%dKiB", np, chunkKiB), func(b *testing.B) {
				benchDownload(b, np, chunkKiB<<10, benchSize())
			})
		}
	}
}

// BenchmarkChunkSize: 4 capped providers, chunk sizes side by side.
func BenchmarkChunkSize(b *testing.B) {
	for _, chunkKiB := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("providers=4/chunk=%dKiB", chunkKiB), func(b *testing.B) {
			benchDownload(b, 4, chunkKiB<<10, benchSize())
		})
	}
}

func benchDownload(b *testing.B, np, chunkSize, size int) {
	capB, _ := bwlimit.Parse(benchCap)
	for range b.N {
		b.StopTimer()
		nodes := swarm(b, np+1, func(i int, o *daemon.Options) {
			if i < np {
				o.MaxUpload = benchCap
			}
		})
		path, sum := randomFile(b, b.TempDir(), size, uint64(chunkSize))
		id := share(b, path, chunkSize, nodes[:np]...)
		viewer := nodes[np]
		b.StartTimer()
		t0 := time.Now()
		pr, err := play(b, viewer, id, false, 20*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, apiURL(viewer, pr.Path), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var first time.Duration
		buf := make([]byte, 64<<10)
		n := 0
		h := newHasher()
		for {
			k, err := resp.Body.Read(buf)
			if k > 0 && n == 0 {
				first = time.Since(t0)
			}
			n += k
			h.Write(buf[:k])
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
		el := time.Since(t0)
		b.StopTimer()
		if n != size || h.sum() != sum {
			b.Fatalf("got %d bytes, want %d identical", n, size)
		}
		rate := float64(size) / el.Seconds()
		b.ReportMetric(rate*8/1e6, "Mbit/s")
		b.ReportMetric(100*rate/(capB*float64(np)), "%caps")
		b.ReportMetric(float64(first.Milliseconds()), "ms-first-byte")
		b.ReportMetric(0, "ns/op")
		st := viewer.VOD().Session(id).Stats()
		b.Logf("%d providers, chunk %d KiB: %.1f Mbit/s = %.1f %% of %d × %s; first byte after %v; per peer %v",
			np, chunkSize>>10, rate*8/1e6, 100*rate/(capB*float64(np)), np, benchCap, first, bytesFrom(st))
		for _, nd := range nodes {
			nd.close()
		}
	}
}

// BenchmarkStartAndSeek: time from play (POST /v1/play) to the first byte
// at the HTTP endpoint, and from a Range request far ahead to its first
// byte, with 4 capped providers.
func BenchmarkStartAndSeek(b *testing.B) {
	size := 64 * mib
	for range b.N {
		b.StopTimer()
		nodes := swarm(b, 5, func(i int, o *daemon.Options) {
			if i < 4 {
				o.MaxUpload = benchCap
			}
		})
		path, _ := randomFile(b, b.TempDir(), size, 99)
		id := share(b, path, 0, nodes[:4]...)
		viewer := nodes[4]
		b.StartTimer()
		t0 := time.Now()
		pr, err := play(b, viewer, id, false, 20*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		tPlay := time.Since(t0)
		ctx, cancel := context.WithCancel(context.Background())
		startFirst := firstByte(b, ctx, apiURL(viewer, pr.Path), "")
		tStart := time.Since(t0)
		time.Sleep(time.Second)
		t1 := time.Now()
		firstByte(b, ctx, apiURL(viewer, pr.Path), "bytes="+strconv.Itoa(size-8*mib)+"-")
		tSeek := time.Since(t1)
		cancel()
		b.StopTimer()
		_ = startFirst
		b.ReportMetric(float64(tPlay.Milliseconds()), "ms-play-api")
		b.ReportMetric(float64(tStart.Milliseconds()), "ms-play-to-first-byte")
		b.ReportMetric(float64(tSeek.Milliseconds()), "ms-seek-to-first-byte")
		b.ReportMetric(0, "ns/op")
		for _, nd := range nodes {
			nd.close()
		}
	}
}

func firstByte(b *testing.B, ctx context.Context, url, rng string) time.Duration {
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, one); err != nil {
		b.Fatal(err)
	}
	go func() { io.Copy(io.Discard, resp.Body); resp.Body.Close() }()
	return time.Since(t0)
}

// BenchmarkNoStoreMemory: heap in use of a viewer process (all nodes run in
// this process; the providers serve from disk) after streaming 64 MiB and
// 256 MiB in --no-store mode. Bounded memory means the two are alike.
func BenchmarkNoStoreMemory(b *testing.B) {
	for _, sz := range []int{64, 256} {
		b.Run(fmt.Sprintf("size=%dMiB", sz), func(b *testing.B) {
			for range b.N {
				nodes := swarm(b, 2, nil)
				path, sum := randomFile(b, b.TempDir(), sz*mib, uint64(sz))
				id := share(b, path, 0, nodes[0])
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				got := streamAll(b, nodes[1], id, true, 5*time.Minute)
				if got != sum {
					b.Fatal("bytes differ")
				}
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapInuse)/mib, "MiB-heap-inuse")
				b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/mib, "MiB-heap-growth")
				b.ReportMetric(0, "ns/op")
				for _, nd := range nodes {
					nd.close()
				}
			}
		})
	}
}
