package bwlimit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want float64
	}{
		{"", 0}, {"0", 0}, {"unlimited", 0}, {"Unlimited", 0},
		{"4Mbit", 500_000}, {"4Mbps", 500_000}, {"4Mbit/s", 500_000}, {"4mbit", 500_000},
		{"500kbit", 62_500}, {"500Kbit", 62_500}, {"1Gbit", 125_000_000},
		{"2MB", 2_000_000}, {"1.5MiB", 1.5 * (1 << 20)}, {"10GiB", 10 << 30}, {"64KiB", 64 << 10},
		{"1000", 1000}, {"1000B", 1000}, {"8bit", 1}, {" 4Mbit ", 500_000}, {"2M", 2e6},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"Mbit", "4 parsecs", "-1Mbit", "1.2.3MB", "4Xbit", "abc", "4 M bit"} {
		if v, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, v)
		}
	}
}

func TestNew(t *testing.T) {
	if New(0) != nil || New(-5) != nil {
		t.Fatal("no limit must be nil")
	}
	l := New(1e6)
	if float64(l.Limit()) != 1e6 || l.Burst() != 100_000 {
		t.Fatalf("limit %v burst %d", l.Limit(), l.Burst())
	}
	if b := New(1000).Burst(); b != chunk {
		t.Fatalf("small rate: burst %d, want at least one piece (%d)", b, chunk)
	}
}

// measure moves n bytes through fn and returns the time it took.
func measure(fn func() error) (time.Duration, error) {
	t0 := time.Now()
	err := fn()
	return time.Since(t0), err
}

// Rates are checked as lower bounds only (a loaded machine is slower, never
// faster, than the limiter allows): at 1 MB/s with a 100 kB burst, 400 kB
// cannot take less than (400-100)/1000 s.
func TestWriterRespectsLimit(t *testing.T) {
	var dst bytes.Buffer
	w := Writer(context.Background(), &dst, New(1e6))
	src := bytes.Repeat([]byte("x"), 400_000)
	d, err := measure(func() error { _, err := w.Write(src); return err })
	if err != nil || dst.Len() != len(src) {
		t.Fatalf("wrote %d, err %v", dst.Len(), err)
	}
	if d < 280*time.Millisecond {
		t.Fatalf("400 kB at 1 MB/s took %v: the limit was not applied", d)
	}
}

func TestReaderRespectsLimit(t *testing.T) {
	src := bytes.Repeat([]byte("y"), 400_000)
	r := Reader(context.Background(), bytes.NewReader(src), New(1e6))
	var got []byte
	d, err := measure(func() error { var err error; got, err = io.ReadAll(r); return err })
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
	if d < 280*time.Millisecond {
		t.Fatalf("400 kB at 1 MB/s took %v: the limit was not applied", d)
	}
}

func TestUnlimitedIsPassthrough(t *testing.T) {
	var b bytes.Buffer
	if w := Writer(context.Background(), &b, nil); w != io.Writer(&b) {
		t.Fatal("nil limiter must return the writer itself")
	}
	r := strings.NewReader("z")
	if Reader(context.Background(), r, nil) != io.Reader(r) {
		t.Fatal("nil limiter must return the reader itself")
	}
}

// A cancelled context ends a wait at once with the context's error.
func TestCancelEndsWait(t *testing.T) {
	lim := rate.NewLimiter(rate.Limit(1000), chunk) // 16 KiB burst, then 1 kB/s
	ctx, cancel := context.WithCancel(context.Background())
	w := Writer(ctx, io.Discard, lim)
	done := make(chan error, 1)
	go func() { _, err := w.Write(make([]byte, 200_000)); done <- err }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write did not return after cancel")
	}
}

// Reads larger than a piece are cut to a piece so that one Read never asks
// the limiter for more than its burst.
func TestReaderPieces(t *testing.T) {
	src := bytes.Repeat([]byte("q"), 100_000)
	r := Reader(context.Background(), bytes.NewReader(src), rate.NewLimiter(rate.Inf, chunk))
	p := make([]byte, 100_000)
	n, err := r.Read(p)
	if err != nil || n > chunk {
		t.Fatalf("read %d (err %v), want at most %d", n, err, chunk)
	}
}
