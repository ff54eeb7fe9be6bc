// Package bwlimit caps a node's upload and download rates with token buckets
// (golang.org/x/time/rate) shared by all streams of a direction.
package bwlimit

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/time/rate"
)

// Parse reads a rate such as "4Mbit", "4Mbps", "500kbit", "2MB", "1.5MiB"
// (per second implied) and returns bytes per second. "0", "" and "unlimited"
// mean no limit (0). Bits use SI prefixes; "B" units accept SI (kB, MB) and
// binary (KiB, MiB) prefixes.
func Parse(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || strings.EqualFold(s, "unlimited") {
		return 0, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return !(unicode.IsDigit(r) || r == '.') })
	if i == 0 {
		return 0, fmt.Errorf("rate %q: want a number and a unit such as 4Mbit or 2MB", s)
	}
	num, unit := s, ""
	if i > 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("rate %q: bad number", s)
	}
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "/s"), "ps")
	mult := map[string]float64{
		"": 1, "B": 1, "bit": 1.0 / 8, "b": 1.0 / 8,
		"k": 1e3, "K": 1e3, "kB": 1e3, "KB": 1e3, "KiB": 1 << 10, "kbit": 1e3 / 8, "Kbit": 1e3 / 8, "kb": 1e3 / 8, "Kb": 1e3 / 8,
		"M": 1e6, "MB": 1e6, "MiB": 1 << 20, "Mbit": 1e6 / 8, "Mb": 1e6 / 8, "mbit": 1e6 / 8,
		"G": 1e9, "GB": 1e9, "GiB": 1 << 30, "Gbit": 1e9 / 8, "Gb": 1e9 / 8, "gbit": 1e9 / 8,
	}
	m, ok := mult[unit]
	if !ok {
		return 0, fmt.Errorf("rate %q: unknown unit %q (use bit, kbit, Mbit, Gbit, B, kB, MB, KiB, MiB)", s, unit)
	}
	return v * m, nil
}

// chunk is the largest piece a limited stream moves per token request.
const chunk = 16 << 10

// New returns a limiter for bytesPerSec (nil for 0: unlimited). The burst is
// a tenth of a second of traffic, at least one piece.
func New(bytesPerSec float64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	burst := int(bytesPerSec / 10)
	if burst < chunk {
		burst = chunk
	}
	return rate.NewLimiter(rate.Limit(bytesPerSec), burst)
}

// Writer wraps w so that its writes respect lim (nil: unlimited). ctx
// cancels waits.
func Writer(ctx context.Context, w io.Writer, lim *rate.Limiter) io.Writer {
	if lim == nil {
		return w
	}
	return &writer{ctx: ctx, w: w, lim: lim}
}

type writer struct {
	ctx context.Context
	w   io.Writer
	lim *rate.Limiter
}

func (l *writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunk, l.lim.Burst())
		if err := l.lim.WaitN(l.ctx, k); err != nil {
			return n, err
		}
		m, err := l.w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// Reader wraps r so that its reads respect lim (nil: unlimited).
func Reader(ctx context.Context, r io.Reader, lim *rate.Limiter) io.Reader {
	if lim == nil {
		return r
	}
	return &reader{ctx: ctx, r: r, lim: lim}
}

type reader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (l *reader) Read(p []byte) (int, error) {
	if len(p) > chunk {
		p = p[:min(chunk, l.lim.Burst())]
	}
	n, err := l.r.Read(p)
	if n > 0 {
		if werr := l.lim.WaitN(l.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
