package main

import (
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hivecast/hivecast/protocol/manifest"
)

// File-sharing errors through the built binary: each is one line on
// stderr, a non-zero exit, and the daemon is unharmed.
func TestVODErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	a := startDaemon(t, bin)
	_, aAddr := idOf(t, bin, a.dir)
	b := startDaemon(t, bin, "--bootstrap", aAddr) // so the DHT lookup really runs
	dir := t.TempDir()

	// Unreadable file. We run as root, so permission bits do not stop a
	// read; a unix socket is a path that stat sees as a non-directory but
	// that open(2) refuses (ENXIO, "no such device or address").
	sock := filepath.Join(dir, "video.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	// A well-formed file ID that nobody provides.
	data := make([]byte, 100_000)
	rand.NewChaCha8([32]byte{42}).Read(data)
	m, err := manifest.Build(bytes.NewReader(data), "nobody.ts", "video/mp2t", 0)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"share", "--data-dir", a.dir, filepath.Join(dir, "nope.ts")}, "no such file"},
		{"directory", []string{"share", "--data-dir", a.dir, dir}, "is a directory"},
		{"unreadable file", []string{"share", "--data-dir", a.dir, sock}, "cannot read"},
		{"malformed ID", []string{"play", "--data-dir", a.dir, "-o", filepath.Join(dir, "out"), "bafy-not-an-id"}, "malformed ID"},
		{"malformed ID unshare", []string{"unshare", "--data-dir", a.dir, "xyz"}, "malformed ID"},
		{"nobody provides", []string{"play", "--data-dir", b.dir, "--find-timeout", "2s", "-o", filepath.Join(dir, "out"), m.ID().String()}, "no providers found"},
		{"not shared here", []string{"unshare", "--data-dir", a.dir, m.ID().String()}, "not shared"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := cli(t, bin, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, stdout %q", out)
			}
			t.Logf("stderr: %s", strings.TrimSpace(errs))
			if !strings.Contains(errs, tc.want) {
				t.Fatalf("stderr %q does not say %q", errs, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(errs), "\n"); n != 0 {
				t.Fatalf("error is %d lines, want one: %q", n+1, errs)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("a failed play left an output file")
	}
	for _, d := range []*proc{a, b} {
		if _, errs, code := cli(t, bin, "id", "--data-dir", d.dir); code != 0 {
			t.Fatalf("daemon harmed: %s", errs)
		}
	}
	// And it still shares: a real file works after all those errors.
	f := filepath.Join(dir, "ok.ts")
	os.WriteFile(f, data, 0o644)
	if out, errs, code := cli(t, bin, "share", "--data-dir", a.dir, "--name", "nobody.ts", f); code != 0 || strings.TrimSpace(out) != m.ID().String() {
		t.Fatalf("share after errors: exit %d, %q %q", code, out, errs)
	}
	out, _, code := cli(t, bin, "ls", "--data-dir", a.dir)
	if code != 0 || !strings.Contains(out, m.ID().String()) {
		t.Fatalf("ls: %q", out)
	}
}

// ls reports a shared file that changed or vanished in its PROBLEM column.
func TestLsReportsProblems(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	a := startDaemon(t, bin)
	dir := t.TempDir()
	changed, gone := filepath.Join(dir, "changed.ts"), filepath.Join(dir, "gone.ts")
	for i, f := range []string{changed, gone} {
		data := make([]byte, 300_000)
		rand.NewChaCha8([32]byte{byte(i)}).Read(data)
		os.WriteFile(f, data, 0o644)
		if _, errs, code := cli(t, bin, "share", "--data-dir", a.dir, f); code != 0 {
			t.Fatalf("share: %s", errs)
		}
	}
	os.WriteFile(changed, make([]byte, 300_001), 0o644)
	os.Remove(gone)
	out, errs, code := cli(t, bin, "ls", "--data-dir", a.dir)
	if code != 0 {
		t.Fatalf("ls: %s", errs)
	}
	if !strings.Contains(out, "PROBLEM") || !strings.Contains(out, "changed since it was shared: not served") || !strings.Contains(out, "missing: not served") {
		t.Fatalf("ls output does not report the problems:\n%s", out)
	}
}
