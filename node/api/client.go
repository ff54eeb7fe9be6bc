package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"

	"github.com/hivecast/hivecast/node"
)

// ErrNoDaemon means no daemon answered at the API address.
var ErrNoDaemon = errors.New("no hivecast daemon is running (start one with `hivecast daemon`, or point --api / --data-dir at it)")

// Client talks to a daemon's API.
type Client struct {
	Addr string // host:port
	HTTP *http.Client
}

// NewClient returns a client for the API at addr (host:port).
func NewClient(addr string) *Client {
	return &Client{Addr: addr, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// URL returns the full URL of an API path.
func (c *Client) URL(path string) string { return "http://" + c.Addr + path }

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (if not nil). API errors come back as errors with the daemon's
// message.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL(path), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (nothing listens at %s)", ErrNoDaemon, c.Addr)
		}
		return fmt.Errorf("daemon API at %s: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e ErrorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon API: %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// ID returns the daemon's peer ID and addresses.
func (c *Client) ID(ctx context.Context) (IDResponse, error) {
	var r IDResponse
	err := c.Do(ctx, http.MethodGet, "/v1/id", nil, &r)
	return r, err
}

// Peers lists connected peers.
func (c *Client) Peers(ctx context.Context) ([]node.PeerInfo, error) {
	var r []node.PeerInfo
	err := c.Do(ctx, http.MethodGet, "/v1/peers", nil, &r)
	return r, err
}

// Connect asks the daemon to dial addr.
func (c *Client) Connect(ctx context.Context, addr string) (ConnectResponse, error) {
	var r ConnectResponse
	err := c.Do(ctx, http.MethodPost, "/v1/connect", ConnectRequest{Addr: addr}, &r)
	return r, err
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (json.RawMessage, error) {
	var r json.RawMessage
	err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &r)
	return r, err
}
