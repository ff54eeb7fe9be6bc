package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary builds the hivecast binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hivecast-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "hivecast")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = err
			t.Logf("go build: %s", out)
		}
	})
	if binErr != nil {
		t.Fatalf("build hivecast: %v", binErr)
	}
	return binPath
}

type proc struct {
	cmd    *exec.Cmd
	dir    string
	stderr *bytes.Buffer
	done   chan error
}

// startDaemon runs `hivecast daemon` on loopback with free ports.
func startDaemon(t *testing.T, bin string, extra ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"daemon", "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0",
		"--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--api", "127.0.0.1:0", "--no-mdns", "--no-nat-portmap"}, extra...)
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, dir: dir, stderr: &stderr, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "api")); err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not write its api file; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func cli(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func peerIDs(t *testing.T, bin, dir string) map[string]bool {
	t.Helper()
	out, errs, code := cli(t, bin, "peers", "--json", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("peers --json: exit %d: %s", code, errs)
	}
	var ps []struct {
		ID        string `json:"id"`
		Addr      string `json:"addr"`
		Direction string `json:"direction"`
	}
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("peers --json output %q: %v", out, err)
	}
	m := map[string]bool{}
	for _, p := range ps {
		if p.Addr == "" || p.Direction == "" {
			t.Fatalf("peer without address or direction: %+v", p)
		}
		m[p.ID] = true
	}
	return m
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func idOf(t *testing.T, bin, dir string) (string, string) {
	out, errs, code := cli(t, bin, "id", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("id: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "/ip4/127.0.0.1/tcp/") && strings.HasSuffix(l, "/p2p/"+lines[0]) {
			return lines[0], l
		}
	}
	t.Fatalf("id printed no loopback TCP address: %q", out)
	return "", ""
}

func TestEndToEndSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	a := startDaemon(t, bin)
	aID, aAddr := idOf(t, bin, a.dir)
	b := startDaemon(t, bin, "--bootstrap", aAddr)
	c := startDaemon(t, bin, "--bootstrap", aAddr)
	bID, _ := idOf(t, bin, b.dir)
	cID, _ := idOf(t, bin, c.dir)

	eventually(t, "A sees B and C", func() bool { p := peerIDs(t, bin, a.dir); return p[bID] && p[cID] })
	eventually(t, "B and C meet through the DHT", func() bool { p := peerIDs(t, bin, b.dir); return p[aID] && p[cID] })

	// Kill C hard: the others notice.
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A and B notice C is gone", func() bool {
		return !peerIDs(t, bin, a.dir)[cID] && !peerIDs(t, bin, b.dir)[cID]
	})

	// SIGTERM: clean exit 0, api file removed.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, b.stderr.String())
		}
		b.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not exit within 10 s of SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(b.dir, "api")); !os.IsNotExist(err) {
		t.Fatalf("api file left after clean exit: %v", err)
	}

	// Status works and reports the peer.
	out, errs, code := cli(t, bin, "status", "--json", "--data-dir", a.dir)
	if code != 0 {
		t.Fatalf("status: %d %s", code, errs)
	}
	var st struct {
		ID    string `json:"id"`
		Peers int    `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.ID != aID {
		t.Fatalf("status --json = %q (%v)", out, err)
	}
}

func TestCLIErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	empty := t.TempDir()
	a := startDaemon(t, bin)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no daemon", []string{"status", "--data-dir", empty}, "no hivecast daemon is running"},
		{"bad multiaddr", []string{"connect", "--data-dir", a.dir, "/ip4/1.2.3/tcp/1"}, "invalid multiaddr"},
		{"no peer id", []string{"connect", "--data-dir", a.dir, "/ip4/127.0.0.1/tcp/1"}, "must end in /p2p/"},
		{"unreachable", []string{"connect", "--data-dir", a.dir, "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWA4YWmWPajye8V7pHN7zJEv72jJfK7MSqM4dFQVbBpJst"}, "cannot reach"},
		{"data dir in use", []string{"daemon", "--data-dir", a.dir, "--api", "127.0.0.1:0", "--port", "0", "--no-mdns", "--no-nat-portmap"}, "data dir in use"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := cli(t, bin, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, stdout %q", out)
			}
			if !strings.Contains(errs, tc.want) {
				t.Fatalf("stderr %q does not say %q", errs, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(errs), "\n"); n != 0 {
				t.Fatalf("error is %d lines, want one: %q", n+1, errs)
			}
		})
	}
	// The daemon is unharmed by all of that.
	if _, errs, code := cli(t, bin, "id", "--data-dir", a.dir); code != 0 {
		t.Fatalf("daemon harmed: %s", errs)
	}
}
