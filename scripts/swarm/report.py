#!/usr/bin/env python3
"""Helpers for scripts/swarm/test.sh: read `hivecast status --json` samples, pick
relays, print the per-viewer table and apply the pass/fail gates.

Samples live in SAMPLES/<short-name>/<unix-time>.json, one `status --json` each.
The live stream fields are read tolerantly (the status format of live streams is new):
a stream is any object in the status that has a "continuity" key; delay is its
"delay_ms" object {p50, p95, p99}.

Usage:
  report.py get FILE KEY                      print a top-level field of a status file
  report.py peers-exclude FILE ID...          exit 0 if no peer in FILE (peers --json) has one of the IDs
  report.py bytes-from FILE CONTENT PEER      bytes of CONTENT that FILE's status says came from PEER
  report.py playing FILE                      exit 0 if FILE's status shows a live stream being played
  report.py pick-partition SAMPLES NAME...    a viewer whose stream parent is BC_ID (env), else the first
  report.py relays K SAMPLES NAME...          the K viewers others relay through most (children, else bytes_out)
  report.py file RESULTS SAMPLES              file mode: table and gates (RESULTS: see test.sh)
  report.py live ROLES SAMPLES                live mode: table and gates (ROLES: "name role" lines)
"""
import glob
import json
import os
import sys

MIN_CONTINUITY = float(os.environ.get("MIN_CONTINUITY", "0.99"))
MAX_P95_MS = float(os.environ.get("MAX_P95_MS", "1500"))
BC_ID = os.environ.get("BC_ID", "")


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def samples(sdir, name):
    """All samples of one node, oldest first, as (time, status)."""
    out = []
    for p in glob.glob(os.path.join(sdir, name, "*.json")):
        d = load(p)
        if d is not None:
            out.append((float(os.path.basename(p)[:-5]), d))
    out.sort(key=lambda x: x[0])
    return out


def last(sdir, name):
    s = samples(sdir, name)
    return s[-1][1] if s else None


def streams(d):
    """Every object in d that looks like a live stream's stats."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "continuity" in x:
                found.append(x)
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(d)
    return found


def pick(d, *keys, default=None):
    """The first present key of d (dotted paths allowed)."""
    for k in keys:
        cur = d
        ok = True
        for part in k.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                ok = False
                break
        if ok and cur is not None:
            return cur
    return default


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def human(n):
    n = num(n)
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def fmt(x, spec="{:.0f}"):
    x = num(x)
    return "?" if x is None else spec.format(x)


def table(header, rows):
    w = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip()
    print(line(header))
    print(line(["-" * x for x in w]))
    for r in rows:
        print(line(r))


def cmd_get(path, key):
    d = load(path)
    if d is None:
        sys.exit(1)
    v = pick(d, key)
    if v is None:
        sys.exit(1)
    print(v)


def cmd_peers_exclude(path, ids):
    d = load(path)
    if d is None:
        sys.exit(2)
    have = {p.get("id") for p in (d if isinstance(d, list) else d.get("peers", []))}
    sys.exit(1 if have & set(ids) else 0)


def cmd_playing(path):
    d = load(path)
    for s in streams(d or {}):
        if num(pick(s, "startup_ms")) or num(pick(s, "bytes_down", "down_bytes", "bytes_in", "received_bytes")):
            sys.exit(0)
    sys.exit(1)


def cmd_relays(k, sdir, names):
    scored = []
    for n in names:
        d = last(sdir, n) or {}
        st = streams(d)
        children = sum(num(pick(s, "children", default=0)) or 0 for s in st) if st else None
        if isinstance(pick(d, "children"), (int, float)):
            children = (children or 0) + pick(d, "children")
        scored.append((children if children is not None else -1, num(pick(d, "bytes_out")) or 0, n))
    scored.sort(reverse=True)
    by = "children" if any(s[0] > 0 for s in scored) else "bytes_out"
    chosen = [s[2] for s in scored[:k]]
    print(" ".join(chosen))
    print(f"relays picked by {by}: " + ", ".join(f"{s[2]}(children={int(s[0]) if s[0] >= 0 else '-'}, up={human(s[1])})" for s in scored[:k]),
          file=sys.stderr)


def cmd_file(results, sdir):
    """RESULTS lines: name role phase rc seconds hash_ok ; phase is a, a2, b, c."""
    rows = {}
    fails = []
    checks = 0
    with open(results) as f:
        for line in f:
            p = line.split()
            if len(p) != 6:
                continue
            name, role, phase, rc, secs, hok = p
            r = rows.setdefault(name, {"roles": []})
            if role != "viewer" and role not in r["roles"]:
                r["roles"].append(role)
            r[phase] = (int(rc), float(secs), hok)
    order = sorted(rows, key=lambda n: int("".join(c for c in n if c.isdigit()) or 0))
    out = []
    tot_src = tot_via = 0
    for n in order:
        r = rows[n]
        d = last(sdir, n) or {}
        r["role"] = "+".join(r["roles"]) or "viewer"
        cells = [n, r["role"]]
        for ph in ("a", "a2", "b", "c"):
            if ph not in r:
                cells.append("-")
                continue
            rc, secs, hok = r[ph]
            expected_fail = ph == "a" and "killed" in r["roles"]
            if expected_fail:
                cells.append("killed")
                continue
            checks += 1
            if rc == 0 and hok == "ok":
                cells.append(f"{secs:.1f}s ok")
            else:
                cells.append(f"FAIL(rc={rc},{hok})")
                fails.append(f"{n} phase {ph}: exit {rc}, content {hok}")
        src = via = 0
        for f in d.get("files") or []:
            for p in f.get("peers") or []:
                b = num(p.get("bytes")) or 0
                if p.get("id") == BC_ID:
                    src += b
                else:
                    via += b
        cells += [fmt(100 * via / (src + via) if src + via else None, "{:.0f} %"),
                  human(pick(d, "bytes_out")), human(pick(d, "bytes_in")), fmt(pick(d, "peers"))]
        tot_src += src
        tot_via += via
        out.append(cells)
    print("file mode: seconds to fetch and verify each file on each viewer")
    print("  a = 1st file while a third of viewers (the top relays) are killed; a2 = same file after their restart")
    print("  b = 2nd file while one viewer is partitioned from bootstrap and broadcaster; c = 3rd file while bootstrap is down")
    print("  via peers = share of the file bytes a viewer got from other viewers, not the broadcaster;")
    print("  up/down = the daemon's libp2p bytes since its (re)start")
    table(["viewer", "role", "a", "a2", "b", "c", "via peers", "up", "down", "peers"], out)
    bc = last(sdir, "broadcaster") or {}
    eff = f"{100 * tot_via / (tot_src + tot_via):.0f} %" if tot_src + tot_via else "?"
    print(f"broadcaster: up {human(pick(bc, 'bytes_out'))}, down {human(pick(bc, 'bytes_in'))}; "
          f"peer efficiency (file bytes viewers got from viewers): {eff}")
    return checks, fails


def cmd_live(roles_path, sdir):
    roles = {}
    with open(roles_path) as f:
        for line in f:
            p = line.split()
            if len(p) == 2:
                roles[p[0]] = p[1]
    order = sorted(roles, key=lambda n: int("".join(c for c in n if c.isdigit()) or 0))
    out, fails, checks = [], [], 0
    for n in order:
        d = last(sdir, n) or {}
        st = streams(d)
        s = st[0] if st else {}
        p50 = pick(s, "delay_ms.p50")
        p95 = pick(s, "delay_ms.p95")
        cont = pick(s, "continuity")
        up = pick(s, "bytes_up", "up_bytes", "bytes_out", "sent_bytes", default=pick(d, "bytes_out"))
        down = pick(s, "bytes_down", "down_bytes", "bytes_in", "received_bytes", default=pick(d, "bytes_in"))
        stalls = pick(s, "stalls", "stall_count", "stalls_total")
        verdict = "-"
        if roles[n] != "killed":  # every viewer that was never killed is a survivor
            checks += 1
            bad = []
            if num(cont) is None:
                bad.append("no continuity reported")
            elif num(cont) < MIN_CONTINUITY:
                bad.append(f"continuity {num(cont):.4f} < {MIN_CONTINUITY}")
            if num(p95) is None:
                bad.append("no p95 delay reported")
            elif num(p95) > MAX_P95_MS:
                bad.append(f"p95 delay {num(p95):.0f} ms > {MAX_P95_MS:.0f} ms")
            verdict = "FAIL" if bad else "ok"
            if bad:
                fails.append(f"{n} ({roles[n]}): " + "; ".join(bad))
        out.append([n, roles[n], fmt(p50), fmt(p95), fmt(pick(s, "delay_ms.p99")), fmt(cont, "{:.4f}"),
                    fmt(pick(s, "startup_ms")), fmt(stalls), fmt(pick(s, "missed")), fmt(pick(s, "parent_switches")),
                    human(up), human(down), fmt(pick(s, "children")), verdict])
    print(f"live mode: per viewer, at the end of the run (gates: continuity >= {MIN_CONTINUITY}, p95 <= {MAX_P95_MS:.0f} ms, survivors only)")
    print("  killed viewers' figures are those of their session after the restart; up/down are the stream's bytes")
    table(["viewer", "role", "p50 ms", "p95 ms", "p99 ms", "continuity", "startup ms", "stalls", "missed", "switches",
           "up", "down", "children", "gate"], out)
    bc = last(sdir, "broadcaster") or {}
    print(f"broadcaster: up {human(pick(bc, 'bytes_out'))} (source load), down {human(pick(bc, 'bytes_in'))}")
    return checks, fails


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    c = a[0]
    if c == "get":
        cmd_get(a[1], a[2])
    elif c == "peers-exclude":
        cmd_peers_exclude(a[1], a[2:])
    elif c == "pick-partition":
        # a viewer fed straight by the broadcaster (stream parent == BC_ID), else the first
        names = a[2:]
        for n in names:
            if any(s.get("parent") == BC_ID for s in streams(last(a[1], n) or {})):
                print(n)
                return
        print(names[0] if names else "")
    elif c == "bytes-from":
        d = load(a[1]) or {}
        print(int(sum(num(p.get("bytes")) or 0 for f in d.get("files") or [] if f.get("id") == a[2]
                      for p in f.get("peers") or [] if p.get("id") == a[3])))
    elif c == "playing":
        cmd_playing(a[1])
    elif c == "relays":
        cmd_relays(int(a[1]), a[2], a[3:])
    elif c in ("file", "live"):
        checks, fails = cmd_file(a[1], a[2]) if c == "file" else cmd_live(a[1], a[2])
        for f in fails:
            print("FAIL " + f)
        # Counts of the per-viewer checks; test.sh adds its own and prints the closing line.
        with open(os.environ.get("REPORT_COUNTS", "/dev/null"), "w") as f:
            f.write(f"{checks - len(fails)} {len(fails)}\n")
        sys.exit(1 if fails else 0)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
