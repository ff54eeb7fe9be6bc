// Package httpsrc reads a hivecast HTTP stream as an io.ReadSeekCloser (for
// players such as libVLC that pull from a reader): files with HTTP Range
// requests, live streams as a plain body.
package httpsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Seeker reads a file served with Range support; Seek reopens at the offset.
type Seeker struct {
	ctx  context.Context
	url  string
	size int64
	off  int64
	body io.ReadCloser
}

// Open asks the server for the size (HEAD) and returns a Seeker.
func Open(ctx context.Context, url string) (*Seeker, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	size, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		return nil, errors.New("stream has no length (a live stream? use Live)")
	}
	return &Seeker{ctx: ctx, url: url, size: size}, nil
}

// Read implements io.Reader.
func (s *Seeker) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	if s.body == nil {
		req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.url, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", s.off))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return 0, fmt.Errorf("%s: %s", s.url, resp.Status)
		}
		s.body = resp.Body
	}
	n, err := s.body.Read(p)
	s.off += int64(n)
	if err == io.EOF && s.off < s.size {
		s.body.Close()
		s.body = nil
		err = nil
	}
	return n, err
}

// Seek implements io.Seeker.
func (s *Seeker) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = s.off + offset
	case io.SeekEnd:
		abs = s.size + offset
	default:
		return 0, errors.New("httpsrc: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("httpsrc: negative position")
	}
	if abs != s.off && s.body != nil {
		s.body.Close()
		s.body = nil
	}
	s.off = abs
	return abs, nil
}

// Close implements io.Closer.
func (s *Seeker) Close() error {
	if s.body != nil {
		return s.body.Close()
	}
	return nil
}

// Live opens a live stream's body.
func Live(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return resp.Body, nil
}
