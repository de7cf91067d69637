#!/usr/bin/env python3
"""The WAN benchmark's driver (run by bench/wan.sh, which sets up the namespaces, the user and
sshd and passes them in WAN_* variables).

For every link (rate x RTT x loss, one-BDP drop-tail queue, loss in both directions) it starts
`linkem` between the namespaces <ns>-a (senders) and <ns>-b (receivers) and measures, each in a
fresh link:
  ours   jscp (in a) pushing a file to a `jetstream server` (in b), default settings;
  cubic  iperf3 TCP CUBIC for --tcp-seconds;
  bbr    iperf3 TCP BBR for --tcp-seconds;
  scp    scp to sshd (in b), stopped after --tcp-seconds.
TCP peers are tuned as their best user would (--tcp-buffers tuned, the default): both
namespaces let TCP autotune its buffers up to 4 x the largest cell's BDP (at least 64 MiB, so
>= 2 x BDP even after the kernel's overhead share), and scp runs over BBR with AES-128-GCM and no
compression. OpenSSH's channel window stays what it is (Debian ships no HPN patches): scp is
window-limited on long paths whatever the kernel allows, which the tables say. --tcp-buffers
defaults keeps the namespaces' stock tcp_rmem / tcp_wmem (6 MiB / 4 MiB at most) and scp on
CUBIC, for a labelled "defaults" row.
Definitions (docs/benchmarks.md):
  goodput      file bytes / the copy's own time (jscp: from the start of the transfer, after
               log-in; iperf3: its receiver figure; scp: wall time, log-in included);
  utilisation  goodput / (rate x (1 - loss));
  wire/byte    IP bytes the sender offered to the link (linkem's count, before loss) / file bytes;
  t90          from the first data packet to the end of the first 100 ms in which the link
               delivered >= 90 % of rate x (1 - loss) (linkem's series);
  CPU s/GB     user + system seconds per GB of file data, sender and receiver.
WAN_SERIES=1 adds each run's delivered series (bytes per 100 ms) to the raw results.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

BIN = os.environ.get("WAN_BIN_DIR", "target/release")
NS = os.environ.get("WAN_NS", "jsw")
WORK = os.environ.get("WAN_WORK", "/dev/shm/jswan")
USER = os.environ.get("WAN_USER", "")
PASSWORD = os.environ.get("WAN_PASSWORD", "")
SSH_KEY = os.environ.get("WAN_SSH_KEY", "")
A, B = "10.99.0.1", "10.99.0.2"
NS_A, NS_B = f"{NS}-a", f"{NS}-b"
TICK = os.sysconf("SC_CLK_TCK")


def in_ns(ns, *cmd):
    return ["ip", "netns", "exec", ns, *cmd]


class Link:
    """One linkem process; stats are read when it stops."""

    def __init__(self, rate, rtt, loss, queue="1bdp", seed=1):
        self.spec = dict(rate=rate, rtt=rtt, loss=loss)
        self.stats_path = f"{WORK}/linkem.json"
        self.err_path = f"{WORK}/linkem.err"
        if os.path.exists(self.stats_path):
            os.remove(self.stats_path)
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [f"{BIN}/linkem", "run", "--name", NS, "--rate", f"{rate}mbit", "--rtt", f"{rtt}ms",
             "--loss", f"{loss}%", "--queue", queue, "--seed", str(seed),
             "--stats", self.stats_path],
            stderr=self.err)
        deadline = time.time() + 10
        while "ready" not in open(self.err_path).read():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("linkem did not start: " + open(self.err_path).read())
            time.sleep(0.02)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        self.err.close()
        with open(self.stats_path) as f:
            return json.load(f)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def timed(cmd, timeout=None, env=None):
    """Runs cmd under /usr/bin/time in its own process group; returns (rc, stdout, user+sys
    seconds, wall seconds). On timeout the whole group is killed (scp leaves an ssh child that
    would otherwise go on uploading through the next measurements)."""
    tfile = f"{WORK}/time.out"
    if os.path.exists(tfile):
        os.remove(tfile)
    t0 = time.time()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%U %S", "-o", tfile, *cmd],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        rc = None
    wall = time.time() - t0
    reap_namespace(NS_A)
    cpu = None
    try:
        nums = re.findall(r"^([\d.]+) ([\d.]+)$", open(tfile).read(), re.M)
        if nums:
            cpu = float(nums[-1][0]) + float(nums[-1][1])
    except OSError:
        pass
    return rc, out, cpu, wall


def reap_namespace(ns):
    """Kills whatever a measurement left running in the senders' namespace, so that nothing
    competes with the next one (and says so)."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    left = pids.stdout.split()
    if left:
        print(f"  (killed {len(left)} leftover process(es) in {ns})", file=sys.stderr)
        subprocess.run(["kill", "-9", *left], capture_output=True)


def link_metrics(stats, proto, spec, payload_bytes):
    """Wire bytes per payload byte and t90 from linkem's a->b counters and series."""
    ab = stats["ab"]
    series = ab["udpBytes" if proto == "udp" else "tcpBytes"]
    bucket = stats["bucketMs"] / 1000
    target = spec["rate"] * 1e6 * (1 - spec["loss"] / 100) * 0.9
    first = next((i for i, b in enumerate(series) if b > 0), None)
    t90 = None
    if first is not None:
        for i in range(first, len(series)):
            if series[i] * 8 / bucket >= target:
                t90 = (i + 1 - first) * bucket
                break
    wire = ab["bytesIn"] / payload_bytes if payload_bytes else None
    out = dict(wire=wire, t90=t90, queue_drops=ab["queueDrops"], lost=ab["lost"],
               max_queue=ab["maxQueueBytes"], tun_drops=stats.get("tunTxDropped"))
    if os.environ.get("WAN_SERIES"):
        # The delivered series itself (bytes per bucket, from the first data packet on), for
        # looking at where a run loses time: start-up, cruise or the loss-recovery tail.
        out["series"] = series[first:] if first is not None else []
    return out


class Server:
    """The jetstream server in namespace b."""

    def __init__(self):
        os.makedirs(f"{WORK}/state", exist_ok=True)
        self.log = open(f"{WORK}/server.log", "w")
        self.proc = subprocess.Popen(
            in_ns(NS_B, f"{BIN}/jetstream", "server", "--persistent-state-dir", f"{WORK}/state",
                  "--sandbox-dir", f"{WORK}/sandbox/%u", "--log", f"{WORK}/server.log"),
            stdout=self.log, stderr=subprocess.STDOUT)
        # jscp's path memory (docs/congestion.md): the grid clears it before each cell's first
        # transfer and keeps it for the repeat transfer.
        self.paths = f"{WORK}/paths"
        self.env = dict(os.environ, JETSTREAM_API_PASSWORD=PASSWORD,
                        JETSTREAM_KNOWN_HOSTS=f"{WORK}/known_hosts", JETSTREAM_PATHS=self.paths)
        self.root = f"{WORK}/sandbox/{USER}"

    def pid(self):
        # `ip netns exec` execs the program: the child's pid is the server's.
        return self.proc.pid

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def run_ours(server, src, n, spec, recursive=False, policy=None, limit=None, timeout=900):
    dst = f"/w{n}/"
    cmd = [f"{BIN}/jscp", "--json", "--accept-new-host"]
    if recursive:
        cmd.append("-r")
    if policy:
        cmd += ["--policy", policy]
    if limit:
        cmd += ["-l", str(limit)]
    cmd += [src, f"{USER}@{B}:{dst}"]
    before = cpu_seconds(server.pid())
    rc, out, cpu, wall = timed(in_ns(NS_A, *cmd), timeout=timeout, env=server.env)
    recv_cpu = cpu_seconds(server.pid()) - before
    done = [json.loads(line) for line in out.splitlines() if '"complete"' in line]
    if rc != 0 or not done:
        return dict(ok=False, rc=rc, wall=wall, out=out[-500:])
    ev = done[-1]
    # A file lands at <root>/wN/<name>; a directory copied with -r at <root>/wN/<name>/.
    target = server.root + dst + os.path.basename(src.rstrip("/"))
    same = subprocess.run(["diff", "-rq", src, target], capture_output=True).returncode == 0
    subprocess.run(["rm", "-rf", server.root + f"/w{n}"])
    if not same:
        raise RuntimeError(f"the copy differs from {src}")
    return dict(ok=True, bytes=ev["bytes"], seconds=ev["seconds"], wall=wall,
                goodput=ev["bytes"] * 8 / ev["seconds"] / 1e6, send_cpu=cpu, recv_cpu=recv_cpu,
                bytes_sent=ev.get("bytesSent"), path_hint=ev.get("pathHint"))


def run_iperf(cc, seconds):
    port = "5201"
    srv_time = f"{WORK}/iperf-server.time"
    srv = subprocess.Popen(in_ns(NS_B, "/usr/bin/time", "-f", "%U %S", "-o", srv_time,
                                 "iperf3", "-s", "-1", "-p", port),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        ss = subprocess.run(in_ns(NS_B, "ss", "-ltnH", f"sport = :{port}"),
                            capture_output=True, text=True).stdout
        if ss.strip():
            break
        time.sleep(0.05)
    rc, out, cpu, wall = timed(in_ns(NS_A, "iperf3", "-c", B, "-p", port, "-t", str(seconds),
                                     "-C", cc, "-J"), timeout=seconds + 60)
    try:
        srv.wait(timeout=20)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()
    try:
        d = json.loads(out)
        recv = d["end"]["sum_received"]
        got, secs = recv["bytes"], recv["seconds"]
        retrans = d["end"]["sum_sent"].get("retransmits")
    except (ValueError, KeyError):
        return dict(ok=False, rc=rc, out=out[-300:])
    s_cpu = None
    try:
        u, s = open(srv_time).read().split()[-2:]
        s_cpu = float(u) + float(s)
    except (OSError, ValueError):
        pass
    return dict(ok=True, bytes=got, seconds=secs, goodput=got * 8 / secs / 1e6, send_cpu=cpu,
                recv_cpu=s_cpu, retransmits=retrans, buffers=TCP["buffers"])


def sysctl(ns, key, value=None):
    """Reads (value None) or sets a sysctl inside namespace `ns`."""
    if value is None:
        return subprocess.run(in_ns(ns, "sysctl", "-n", key), capture_output=True, text=True,
                              check=True).stdout.strip()
    subprocess.run(in_ns(ns, "sysctl", "-qw", f"{key}={value}"), check=True)
    return value


TCP = dict(buffers="defaults", scp_cc="cubic")


def tune_tcp(args):
    """Sets the namespaces' TCP buffers for --tcp-buffers (see the module's docs)."""
    TCP["buffers"] = args.tcp_buffers
    if args.tcp_buffers != "tuned":
        return
    bdp = max(r for r in args.rates) * 1e6 / 8 * max(args.rtts) / 1e3
    top = max(64 << 20, int(4 * bdp))
    for ns in (NS_A, NS_B):
        sysctl(ns, "net.ipv4.tcp_rmem", f"4096 131072 {top}")
        sysctl(ns, "net.ipv4.tcp_wmem", f"4096 16384 {top}")
    TCP.update(buffers=f"tuned: tcp_rmem/tcp_wmem up to {top >> 20} MiB", scp_cc="bbr")


def run_scp(src, seconds, recursive=False):
    dst = f"{WORK}/scpdst"
    subprocess.run(["rm", "-rf", dst])
    os.makedirs(dst)
    cmd = ["scp", "-q", "-P", "2299", "-i", SSH_KEY, "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    if TCP["scp_cc"] == "bbr":
        # What a user tuning scp for a long path can do: the fastest cipher here and no
        # compression (the data is random); the sender's congestion control is set below.
        cmd += ["-c", "aes128-gcm@openssh.com", "-o", "Compression=no"]
    if recursive:
        cmd.append("-r")
    cmd += [src, f"root@{B}:{dst}/"]
    # The data flows from ssh in a: its namespace's default congestion control applies.
    before = sysctl(NS_A, "net.ipv4.tcp_congestion_control")
    sysctl(NS_A, "net.ipv4.tcp_congestion_control", TCP["scp_cc"])
    try:
        rc, _, cpu, wall = timed(in_ns(NS_A, *cmd), timeout=seconds)
    finally:
        sysctl(NS_A, "net.ipv4.tcp_congestion_control", before)
    got = int(subprocess.run(["du", "-sb", dst], capture_output=True, text=True)
              .stdout.split()[0])
    subprocess.run(["rm", "-rf", dst])
    return dict(ok=True, complete=rc == 0, bytes=got, seconds=wall,
                goodput=got * 8 / wall / 1e6, send_cpu=cpu, cc=TCP["scp_cc"])


def ping_rtts(count, interval=0.2):
    out = subprocess.run(in_ns(NS_A, "ping", "-n", "-c", str(count), "-i", str(interval), B),
                         capture_output=True, text=True).stdout
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]


def fmt(v, spec="{:.1f}", none="-"):
    return none if v is None else spec.format(v)


def util(goodput, spec):
    return goodput / (spec["rate"] * (1 - spec["loss"] / 100))


def cpu_per_gb(cpu, nbytes):
    return None if cpu is None or not nbytes else cpu / (nbytes / 1e9)


def emit(out, record):
    out.write(json.dumps(record) + "\n")
    out.flush()


def row_emulator(out, args):
    """Shows the emulator's fidelity: TCP through 500 Mbit/s, and the RTT it adds."""
    print("\n## Emulator fidelity (iperf3 through linkem, 1500-byte MTU)\n")
    print("| link | measured | expected | linkem delivered | linkem drops (queue / tun) |")
    print("|---|---|---|---|---|")
    for rate, rtt, queue in [(500, 2, "4m"), (500, 20, "2bdp"), (1000, 2, "4m")]:
        spec = dict(rate=rate, rtt=rtt, loss=0)
        link = Link(rate, rtt, 0, queue=queue)
        r = run_iperf("cubic", 10)
        st = link.stop()
        busy = [b for b in st["ab"]["tcpBytes"] if b > 0][5:-2]
        delivered = statistics.mean(busy) * 8 / (st["bucketMs"] / 1000) / 1e6 if busy else 0
        # TCP goodput is at most rate x 1448/1500 (IP + TCP headers with timestamps).
        print(f"| {rate} Mbit/s, {rtt} ms, queue {queue} | TCP CUBIC {fmt(r.get('goodput'))} "
              f"Mbit/s | {rate * 1448 / 1500:.1f} | {delivered:.1f} Mbit/s | "
              f"{st['ab']['queueDrops']} / {st['tunTxDropped']} |")
        emit(out, dict(row="emulator", spec=spec, queue=queue, iperf=r, delivered=delivered))
    for rtt in [20, 100, 300]:
        link = Link(100, rtt, 0)
        rtts = ping_rtts(10)
        link.stop()
        print(f"| 100 Mbit/s, {rtt} ms, idle | ping median {statistics.median(rtts):.2f} ms | "
              f"{rtt} ms | - | - |")
        emit(out, dict(row="emulator-rtt", rtt=rtt, ping=rtts))


def grid_cells(args):
    for rate in args.rates:
        for rtt in args.rtts:
            for loss in args.losses:
                yield dict(rate=rate, rtt=rtt, loss=loss)


def target_util(spec):
    """The issues' utilisation target for a cell, or None where they set none: 90 % at
    100 Mbit/s (to 300 ms and 5 %); from 500 Mbit/s (issue 20) 93 % to 200 ms and 3 %, 90 % at
    300 ms."""
    if spec["rate"] <= 100 and spec["rtt"] <= 300 and spec["loss"] <= 5:
        return 0.9
    if spec["rate"] <= 1000 and spec["loss"] <= 3:
        if spec["rtt"] <= 200:
            return 0.93
        if spec["rtt"] <= 300:
            return 0.9
    return None


def row_grid(out, args, server, files):
    small, large = (os.path.getsize(f) >> 20 for f in files)
    print(f"\n## Grid: {small} MiB below 500 Mbit/s, {large} MiB from 500 Mbit/s, one-BDP "
          f"queue, loss both ways; TCP and scp for {args.tcp_seconds} s\n")
    print(GRID_HEADER)
    n = 0
    for spec in grid_cells(args):
        big = files[1] if spec["rate"] >= 500 else files[0]
        size = os.path.getsize(big)
        rec = dict(row="grid", spec=spec, size=size)
        n += 1
        if "ours" in args.tools:
            # The first transfer to this server over this link (no path memory), then the
            # same copy again: the repeat starts from what the first one measured.
            if os.path.exists(server.paths):
                os.remove(server.paths)
            for key in ("ours", "ours_repeat"):
                link = Link(spec["rate"], spec["rtt"], spec["loss"], seed=n)
                ours = run_ours(server, big, n, spec)
                st = link.stop()
                if ours["ok"]:
                    ours.update(link_metrics(st, "udp", spec, size))
                rec[key] = ours
                if not args.repeat:
                    break
        for cc in [c for c in ["cubic", "bbr"] if c in args.tools]:
            link = Link(spec["rate"], spec["rtt"], spec["loss"], seed=n)
            r = run_iperf(cc, args.tcp_seconds)
            st = link.stop()
            if r["ok"]:
                r.update(link_metrics(st, "tcp", spec, r["bytes"]))
            rec[cc] = r
        if args.scp and "scp" in args.tools:
            link = Link(spec["rate"], spec["rtt"], spec["loss"], seed=n)
            rec["scp"] = run_scp(big, args.tcp_seconds)
            link.stop()
        emit(out, rec)
        if "ours" in rec:
            print_grid_line(rec)


GRID_HEADER = (
    "| Mbit/s | RTT ms | loss % | ours Mbit/s | util | wire/byte | t90 s | CPU s/GB send/recv "
    "| repeat: Mbit/s | util | wire/byte | path hint "
    "| CUBIC Mbit/s | BBR Mbit/s (retx) | scp Mbit/s | ours/CUBIC | ours/BBR "
    "| targets (first) | targets (repeat) |\n"
    + "|---" * 19 + "|")


def verdict_of(ours, spec):
    """The issue's targets for one of our runs: "met" or what it misses."""
    if not ours or not ours.get("ok"):
        return "-" if not ours else "failed"
    u = util(ours["goodput"], spec)
    misses = []
    tgt = target_util(spec)
    if tgt and u < tgt:
        misses.append(f"util<{tgt:.0%}")
    if ours.get("wire") and ours["wire"] > (1 + spec["loss"] / 100) * 1.05:
        misses.append("wire")
    if spec["rtt"] == 100 and (ours.get("t90") is None or ours["t90"] > 2):
        misses.append("t90>2s")
    return "met" if not misses else "MISS " + ",".join(misses)


def print_grid_line(rec):
    """Prints one cell's line; returns its verdict ("met" or what it misses)."""
    spec, ours = rec["spec"], rec["ours"]
    again = rec.get("ours_repeat")
    cub, bbr, scp = rec.get("cubic", {}), rec.get("bbr", {}), rec.get("scp")
    if not ours.get("ok"):
        print(f"| {spec['rate']} | {spec['rtt']} | {spec['loss']} | FAILED rc={ours.get('rc')} |")
        return "failed"
    u = util(ours["goodput"], spec)
    verdict = verdict_of(ours, spec)
    if again and again.get("ok"):
        repeat = (f"{again['goodput']:.1f} | {util(again['goodput'], spec):.1%} | "
                  f"{fmt(again.get('wire'), '{:.3f}')} | {again.get('path_hint') or '-'}")
    else:
        repeat = "- | - | - | -"
    ratio = lambda o: fmt(ours["goodput"] / o["goodput"], "{:.1f}x") \
        if o.get("ok") and o.get("goodput") else "-"
    scp_s = "-" if not scp else fmt(scp["goodput"]) + ("" if scp["complete"] else "*")
    print(f"| {spec['rate']} | {spec['rtt']} | {spec['loss']} | {ours['goodput']:.1f} | "
          f"{u:.1%} | {fmt(ours.get('wire'), '{:.3f}')} | {fmt(ours.get('t90'), '{:.1f}')} | "
          f"{fmt(cpu_per_gb(ours['send_cpu'], ours['bytes']), '{:.2f}')}/"
          f"{fmt(cpu_per_gb(ours['recv_cpu'], ours['bytes']), '{:.2f}')} | {repeat} | "
          f"{fmt(cub.get('goodput'))} | {fmt(bbr.get('goodput'))} ({bbr.get('retransmits', '-')}) "
          f"| {scp_s} | {ratio(cub)} | {ratio(bbr)} | {verdict} | {verdict_of(again, spec)} |",
          flush=True)
    return verdict


def row_small(out, args, server, tree, files):
    spec = dict(rate=100, rtt=100, loss=0.1)
    print(f"\n## Many small files: {files} x 16 KiB, {spec['rate']} Mbit/s, {spec['rtt']} ms, "
          f"{spec['loss']} % loss\n")
    link = Link(spec["rate"], spec["rtt"], spec["loss"], seed=99)
    ours = run_ours(server, tree, 900, spec, recursive=True)
    st = link.stop()
    rec = dict(row="small", spec=spec, ours=ours)
    if ours["ok"]:
        ours.update(link_metrics(st, "udp", spec, ours["bytes"]))
    if args.scp:
        link = Link(spec["rate"], spec["rtt"], spec["loss"], seed=99)
        rec["scp"] = run_scp(tree, args.tcp_seconds * 3, recursive=True)
        link.stop()
    emit(out, rec)
    u = util(ours["goodput"], spec) if ours["ok"] else 0
    scp = rec.get("scp")
    print("| ours Mbit/s | util | wire/byte | scp -r Mbit/s | ours/scp | target |")
    print("|---|---|---|---|---|---|")
    print(f"| {fmt(ours.get('goodput'))} | {u:.1%} | {fmt(ours.get('wire'), '{:.3f}')} | "
          f"{fmt(scp['goodput']) + ('' if scp['complete'] else '*') if scp else '-'} | "
          f"{fmt(ours['goodput'] / scp['goodput'], '{:.1f}x') if scp and ours['ok'] else '-'} | "
          f"{'met' if u >= 0.8 else 'MISS util<80%'} |")


def row_tiny(out, args, server):
    """Issue 20 item 4: a 1 KiB copy's whole wall time (process start, TCP, TLS, log-in, the
    transfer, the end) in round trips, jscp on first contact (no known host, no session to
    resume) and on repeat contact, against scp, over 100 Mbit/s and 200 ms; median of 5."""
    spec = dict(rate=100, rtt=200, loss=0)
    print(f"\n## A 1 KiB copy: {spec['rate']} Mbit/s, {spec['rtt']} ms, no loss; whole wall "
          "time, median of 5\n")
    src = f"{WORK}/tiny.bin"
    with open(src, "wb") as f:
        f.write(os.urandom(1024))
    link = Link(spec["rate"], spec["rtt"], spec["loss"], seed=5)
    rec = dict(row="tiny", spec=spec)
    try:
        for key, fresh in (("first", True), ("repeat", False)):
            walls = []
            for i in range(5):
                env = dict(server.env)
                if fresh:
                    env["JETSTREAM_KNOWN_HOSTS"] = f"{WORK}/known_hosts.tiny{i}"
                    env["JETSTREAM_PATHS"] = f"{WORK}/paths.tiny{i}"
                cmd = [f"{BIN}/jscp", "-q", "--accept-new-host", src, f"{USER}@{B}:/tiny{i}/"]
                rc, out_, _, wall = timed(in_ns(NS_A, *cmd), timeout=120, env=env)
                if rc != 0:
                    raise RuntimeError(f"jscp failed: {out_[-300:]}")
                walls.append(wall)
            rec[key] = walls
        if args.scp:
            walls = []
            for _ in range(5):
                r = run_scp(src, 120)
                walls.append(r["seconds"])
            rec["scp"] = walls
    finally:
        link.stop()
        subprocess.run(["sh", "-c", f"rm -rf {server.root}/tiny* {WORK}/known_hosts.tiny* "
                        f"{WORK}/paths.tiny*"])
    emit(out, rec)
    rtt = spec["rtt"] / 1000
    print("| tool | median s | round trips | all runs s |")
    print("|---|---|---|---|")
    for key, name in (("first", "jscp, first contact"), ("repeat", "jscp, repeat contact"),
                      ("scp", "scp")):
        if key in rec:
            m = statistics.median(rec[key])
            print(f"| {name} | {m:.2f} | {m / rtt:.1f} | "
                  f"{', '.join(f'{w:.2f}' for w in rec[key])} |")


def row_fair(out, args, server, big):
    spec = dict(rate=100, rtt=100, loss=0)
    print("\n## Fairness: beside one TCP CUBIC flow, 100 Mbit/s, 100 ms, one-BDP queue, "
          "no loss\n")
    link = Link(100, 100, 0)
    idle = ping_rtts(15)
    link.stop()
    base = statistics.median(idle)
    print(f"Idle ping median {base:.1f} ms.\n")
    print("| policy | ours alone: ping median (+ms) / p95 | ours share | TCP share | "
          "link used | target |")
    print("|---|---|---|---|---|---|")
    policies = [("fair", None), ("background", None), ("fixed", 100000)]
    for policy, limit in [p for p in policies if p[0] in args.policies.split(",")]:
        # (1) Ours alone, with a ping every 200 ms after the ramp.
        link = Link(100, 100, 0, seed=7)
        jscp = subprocess.Popen(
            in_ns(NS_A, f"{BIN}/jscp", "-q", "--accept-new-host", "--policy", policy,
                  *(["-l", str(limit)] if limit else []), big, f"{USER}@{B}:/fair-{policy}/"),
            env=server.env)
        time.sleep(3)
        rtts = ping_rtts(50) if jscp.poll() is None else []
        jscp.send_signal(signal.SIGINT)
        jscp.wait()
        link.stop()
        # (2) Beside iperf3 CUBIC: TCP starts first, ours joins 5 s later; shares over the
        # 10 s to 30 s window of linkem's series.
        link = Link(100, 100, 0, seed=8)
        iperf_srv = subprocess.Popen(in_ns(NS_B, "iperf3", "-s", "-1", "-p", "5202"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        tcp = subprocess.Popen(in_ns(NS_A, "iperf3", "-c", B, "-p", "5202", "-t", "35",
                                     "-C", "cubic"), stdout=subprocess.DEVNULL)
        time.sleep(5)
        jscp = subprocess.Popen(
            in_ns(NS_A, f"{BIN}/jscp", "-q", "--accept-new-host", "--policy", policy,
                  *(["-l", str(limit)] if limit else []), big, f"{USER}@{B}:/fair2-{policy}/"),
            env=server.env)
        tcp.wait()
        if jscp.poll() is None:
            jscp.send_signal(signal.SIGINT)
        jscp.wait()
        iperf_srv.wait()
        st = link.stop()
        subprocess.run(["rm", "-rf", f"{server.root}/fair-{policy}", f"{server.root}/fair2-{policy}"])
        b = st["bucketMs"] / 1000
        lo, hi = int(10 / b), int(30 / b)
        udp = sum(st["ab"]["udpBytes"][lo:hi]) * 8 / (hi - lo) / b / 1e6
        tcpb = sum(st["ab"]["tcpBytes"][lo:hi]) * 8 / (hi - lo) / b / 1e6
        inc = statistics.median(rtts) - base if rtts else None
        p95 = sorted(rtts)[int(len(rtts) * 0.95) - 1] if rtts else None
        meets = inc is not None and inc <= 25
        print(f"| {policy}{' ' + str(limit // 1000) + ' Mbit/s' if limit else ''} | "
              f"{fmt(statistics.median(rtts) if rtts else None)} (+{fmt(inc)}) / {fmt(p95)} | "
              f"{udp:.1f} Mbit/s | {tcpb:.1f} Mbit/s | {(udp + tcpb):.1f} | "
              f"{'met' if meets else 'MISS rtt+>25ms'} |", flush=True)
        emit(out, dict(row="fair", policy=policy, limit=limit, idle_ping=idle, ping=rtts,
                       ours_mbps=udp, tcp_mbps=tcpb))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="a small grid: 100 and 500 Mbit/s x 100 and 200 ms x 0, 1 and 3 %%")
    ap.add_argument("--rows", default="emulator,grid,small,tiny,fair")
    ap.add_argument("--rates", default="100,500,1000")
    ap.add_argument("--rtts", default="2,20,100,200,300")
    ap.add_argument("--losses", default="0,0.1,1,3,5")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--fast-size-mib", type=int, default=1024,
                    help="the file for cells of 500 Mbit/s and more (256 MiB lasts 4 s there)")
    ap.add_argument("--small-files", type=int, default=10000)
    ap.add_argument("--tcp-seconds", type=int, default=20)
    ap.add_argument("--no-scp", dest="scp", action="store_false")
    ap.add_argument("--no-repeat", dest="repeat", action="store_false",
                    help="our first transfer per cell only (no repeat with path memory)")
    ap.add_argument("--tools", default="ours,cubic,bbr,scp",
                    help="the grid's tools (a table can merge runs: bench/lib/wan_table.py)")
    ap.add_argument("--policies", default="fair,background,fixed",
                    help="the fairness row's rate policies")
    ap.add_argument("--tcp-buffers", choices=["tuned", "defaults"], default="tuned",
                    help="TCP peers' buffers: tuned (>= 2 x BDP, scp on BBR) or the stock ones")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/wan-results.jsonl"))
    args = ap.parse_args()
    if args.quick:
        args.rtts, args.losses = "100,200", "0,1,3"
    args.rates = [int(x) for x in args.rates.split(",")]
    args.rtts = [int(x) for x in args.rtts.split(",")]
    args.losses = [float(x) if "." in x else int(x) for x in args.losses.split(",")]
    rows = args.rows.split(",")

    print(f"# WAN benchmark, {time.strftime('%Y-%m-%d %H:%M')}, load before: "
          f"{open('/proc/loadavg').read().split()[:3]}")
    print("command: bench/wan.sh " + " ".join(sys.argv[1:]))
    tune_tcp(args)
    print(f"TCP peers: {TCP['buffers']}; scp over {TCP['scp_cc']}")
    big = f"{WORK}/big.bin"
    subprocess.run(["head", "-c", f"{args.size_mib}M", "/dev/urandom"], stdout=open(big, "wb"),
                   check=True)
    fast = big
    if args.fast_size_mib != args.size_mib and max(args.rates) >= 500 and "grid" in rows:
        fast = f"{WORK}/big-fast.bin"
        subprocess.run(["head", "-c", f"{args.fast_size_mib}M", "/dev/urandom"],
                       stdout=open(fast, "wb"), check=True)
    tree = f"{WORK}/tree"
    if "small" in rows:
        os.makedirs(tree)
        for i in range(args.small_files):
            d = f"{tree}/d{i // 100}"
            os.makedirs(d, exist_ok=True)
            with open(f"{d}/f{i % 100}", "wb") as f:
                f.write(os.urandom(16384))
    server = Server()
    # Ready when the API answers through a plain link.
    link = Link(1000, 0, 0)
    for _ in range(100):
        r = subprocess.run(in_ns(NS_A, f"{BIN}/jetstream", "api", "--host", B,
                                 "--accept-new-host", "echo"),
                           capture_output=True, env=server.env)
        if r.returncode == 0:
            break
        time.sleep(0.1)
    link.stop()
    with open(args.out, "a") as out:
        try:
            if "emulator" in rows:
                row_emulator(out, args)
            if "grid" in rows:
                row_grid(out, args, server, (big, fast))
            if "small" in rows:
                row_small(out, args, server, tree, args.small_files)
            if "tiny" in rows:
                row_tiny(out, args, server)
            if "fair" in rows:
                row_fair(out, args, server, big)
        finally:
            server.stop()
    print(f"\nraw results appended to {args.out}")


if __name__ == "__main__":
    main()
