#!/usr/bin/python3
"""Turns the JSON lines written by scripts/bench into a markdown result table.

Usage: summarize.py echo|fanout|scale RUNS.jsonl MACHINE.txt COMMAND > result.md

Every figure is the median over the interleaved runs of one configuration;
ratios are conduit / baseline of those medians. Runs of server "uws" (a
uWebSockets comparison server, when scripts/bench was given one) add a column
and ratios against it; without such runs the tables are as before. Standard library only, so it
runs with the system /usr/bin/python3.
"""
import json
import statistics
import sys


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_num(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def g(r, *keys):
    """r[k1][k2]... or None when a run failed before producing that field."""
    for k in keys:
        if not isinstance(r, dict) or k not in r:
            return None
        r = r[k]
    return r


def errors_of(r):
    if r.get("error", "none") != "none":
        return f"{r['error']}: {r.get('error_detail', '')}"
    if r["scenario"] == "echo":
        bad = sum(g(r, k) or 0 for k in ("mismatches", "protocol_errors", "closed_early"))
        return f"{bad} errors" if bad else ""
    if r["scenario"] == "upgrades":
        return f"{r['failures']} failed connections" if g(r, "failures") else ""
    if r["scenario"] == "fanout":
        bad = sum(g(r, k) or 0 for k in ("gaps", "out_of_order", "corrupt", "protocol_errors"))
        codes = r.get("close_codes", {})
        extra = ", closes " + ", ".join(f"{c}: {n}" for c, n in codes.items()) if codes else ""
        refused = g(r, "publish_errors") or 0
        extra += f", {refused} publishes refused" if refused else ""
        return (f"{bad} lost/reordered" if bad else "") + extra
    return ""


ECHO_NAMES = {"conduit": "conduit", "beast": "beast", "uws": "uWebSockets",
              "conduit-uring": "conduit, server.io = io_uring"}


def echo_medians(rs):
    """The medians of one echo configuration's runs."""
    return {
        "mps": median([g(r, "messages_per_second") for r in rs]),
        "cpu": median([g(r, "server_cpu_seconds") for r in rs]),
        "eff": median([g(r, "messages_per_server_cpu_second") for r in rs]),
        "p50": median([g(r, "latency", "p50_us") for r in rs]),
        "p99": median([g(r, "latency", "p99_us") for r in rs]),
    }


def echo_row(size, name, rs, m):
    """One echo table row: the medians m of the runs rs of server `name`."""
    problems = "; ".join(p for p in (errors_of(r) for r in rs) if p) or "none"
    return (f"| {size} B | {name} | {len(rs)} | {fmt_num(m['mps'])} | {fmt_num(m['cpu'], 2)} | "
            f"**{fmt_num(m['eff'])}** | {fmt_num(m['p50'], 1)} | {fmt_num(m['p99'], 1)} | {problems} |")


def uring_report(runs):
    """conduitd on epoll against conduitd on io_uring, same run, alternating."""
    out = ["| message | engine | runs | msg/s | server CPU s | msg per server-CPU-second | p50 µs | p99 µs | problems |",
           "|---|---|---|---|---|---|---|---|---|"]
    ratios = ["| message | io_uring/epoll msg per server-CPU-second | io_uring/epoll msg/s |", "|---|---|---|"]
    for size in sorted({r["size"] for r in runs if r["scenario"] == "echo"}):
        med = {}
        for server, name in (("conduit", "epoll"), ("conduit-uring", "io_uring")):
            rs = [r for r in runs if r["scenario"] == "echo" and r["size"] == size and r["server"] == server]
            if not rs:
                continue
            med[server] = echo_medians(rs)
            out.append(echo_row(size, name, rs, med[server]))
        if "conduit" in med and "conduit-uring" in med:
            a, b = med["conduit-uring"], med["conduit"]
            ratios.append(f"| {size} B | {fmt_ratio(a['eff'], b['eff'])} | {fmt_ratio(a['mps'], b['mps'])} |")
    return "\n".join(out + ["", "Ratios of the medians, io_uring / epoll (same run):", ""] + ratios)


def echo_report(runs):
    out = []
    sizes = sorted({r["size"] for r in runs if r["scenario"] == "echo"})
    with_uws = any(r["server"] == "uws" for r in runs)
    out.append("| message | server | runs | msg/s | server CPU s | msg per server-CPU-second | p50 µs | p99 µs | problems |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for size in sizes:
        med = {}
        for server in ("conduit", "beast", "uws"):
            rs = [r for r in runs if r["scenario"] == "echo" and r["size"] == size and r["server"] == server]
            if not rs:
                continue
            med[server] = echo_medians(rs)
            out.append(echo_row(size, ECHO_NAMES[server], rs, med[server]))
        def pair(a, b):
            if a in med and b in med:
                return [fmt_ratio(med[a]["eff"], med[b]["eff"]), fmt_ratio(med[a]["mps"], med[b]["mps"])]
            return ["n/a", "n/a"]

        cells = pair("conduit", "beast")
        if with_uws:
            cells += pair("conduit", "uws") + pair("beast", "uws")
        ratios.append(f"| {size} B | " + " | ".join(cells) + " |")
    out.append("")
    if with_uws:
        out.append("Ratios of the medians (target: conduit at least 1.6x Beast and at least 1.0x uWebSockets "
                   "in msg per server-CPU-second):")
        out.append("")
        out.append("| message | conduit/Beast msg per server-CPU-second | conduit/Beast msg/s "
                   "| conduit/uWebSockets msg per server-CPU-second | conduit/uWebSockets msg/s "
                   "| Beast/uWebSockets msg per server-CPU-second | Beast/uWebSockets msg/s |")
        out.append("|---|---|---|---|---|---|---|")
    else:
        out.append("Ratios conduit / Beast baseline (target: at least 1.6x msg per server-CPU-second):")
        out.append("")
        out.append("| message | msg per server-CPU-second | msg/s |")
        out.append("|---|---|---|")
    out.extend(ratios)
    mem = [r for r in runs if r["scenario"] == "idle-memory"]
    if mem:
        out.append("")
        out.append("Server memory per idle connection (VmRSS after opening the connections minus before, divided by their number; target under 1 KB; failed runs are not counted):")
        out.append("")
        out.append("| server | runs | connections | RSS before KiB | RSS after KiB | KiB per connection (median) |")
        out.append("|---|---|---|---|---|---|")
        per = {}
        for server in ("conduit", "beast", "uws"):
            rs = [r for r in mem if r["server"] == server]
            if not rs:
                continue
            each = [(r["rss_after_kb"] - r["rss_before_kb"]) / r["connections"] for r in rs if r["connections"]]
            per[server] = median(each)
            out.append(
                f"| {ECHO_NAMES[server]} | {len(rs)} | {rs[0]['connections']} | {fmt_num(median([r['rss_before_kb'] for r in rs]))} | "
                f"{fmt_num(median([r['rss_after_kb'] for r in rs]))} | **{fmt_num(per[server], 2)}** |"
            )
        if "conduit" in per and "beast" in per:
            out.append("")
            out.append(f"conduit uses {fmt_ratio(per['conduit'], per['beast'])} of Beast's memory per idle connection.")
        if "conduit" in per and "uws" in per:
            out.append(f"conduit uses {fmt_ratio(per['conduit'], per['uws'])} of uWebSockets' memory per idle "
                       "connection.")
    out.extend(upgrades_report(runs))
    return "\n".join(out)


def upgrades_report(runs):
    """The upgrade storm: whole connection life cycles per server-CPU-second."""
    ups = [r for r in runs if r["scenario"] == "upgrades"]
    if not ups:
        return []
    out = [
        "",
        "Upgrades per server-CPU-second (open + close storm: 64 connections in flight, each one TCP connect, "
        "upgrade, close handshake and the server's FIN; conduit-loadgen upgrades):",
        "",
        "| server | runs | upgrades/s | server CPU s | upgrades per server-CPU-second | problems |",
        "|---|---|---|---|---|---|",
    ]
    per = {}
    for server in ("conduit", "beast", "uws"):
        rs = [r for r in ups if r["server"] == server]
        if not rs:
            continue
        per[server] = median([g(r, "upgrades_per_server_cpu_second") for r in rs])
        problems = "; ".join(p for p in (errors_of(r) for r in rs) if p) or "none"
        out.append(
            f"| {ECHO_NAMES[server]} | {len(rs)} | {fmt_num(median([g(r, 'upgrades_per_second') for r in rs]))} | "
            f"{fmt_num(median([g(r, 'server_cpu_seconds') for r in rs]), 2)} | **{fmt_num(per[server])}** | {problems} |"
        )
    out.append("")
    if "conduit" in per and "beast" in per:
        out.append(f"conduit / Beast: {fmt_ratio(per['conduit'], per['beast'])} upgrades per server-CPU-second.")
    if "conduit" in per and "uws" in per:
        out.append(f"conduit / uWebSockets: {fmt_ratio(per['conduit'], per['uws'])} upgrades per server-CPU-second.")
    return out


# Reference figures, measured on another machine of this kind (uWebSockets included).
ISSUE5 = {
    "uWebSockets": {(1000, 1): 250e3, (1000, 32): 7.1e6, (1000, 0): 348e3, (10000, 1): 187e3, (10000, 32): 5.0e6,
                    (10000, 0): 156e3},
    "beast": {(1000, 1): 164e3, (1000, 32): 193e3, (1000, 0): 151e3, (10000, 1): 107e3, (10000, 32): 105e3,
              (10000, 0): 103e3},
    "node": {(1000, 1): 206e3, (1000, 32): 206e3, (1000, 0): 199e3, (10000, 1): 126e3, (10000, 32): 131e3,
             (10000, 0): 126e3},
}
SERVER_NAMES = {"conduit": "conduit", "beast": "Beast", "uws": "uWebSockets", "node": "Node ws",
                "floor": "send floor",
                "channel": "conduit channel (conduit.v1, history on)",
                "channel-nohist": "conduit channel (conduit.v1, history off)"}


def fmt_short(v):
    if v is None:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    return f"{v / 1e3:.0f}k"


def frames_per_send(r):
    """Frames one send-floor send carries: W for a window W (so 1 for W=1)."""
    return max(1, r["window"])


def floor_deliveries(r):
    """A send-floor run as deliveries per sender-CPU-second."""
    sends = g(r, "sends_per_cpu_second")
    return sends * frames_per_send(r) if sends is not None else None


def fanout_report(runs):
    out = []
    rs_all = [r for r in runs if r["scenario"] in ("fanout", "send-floor")]
    columns = sorted({(r["subscribers_requested"], r["window"]) for r in rs_all}, key=lambda c: (c[0], c[1] == 0, c[1]))
    servers = [s for s in ("conduit", "channel", "channel-nohist", "beast", "uws", "node", "floor")
               if any(r["server"] == s for r in rs_all)]

    def label(c):
        return f"N={c[0]}, " + ("no wait" if c[1] == 0 else f"W={c[1]}")

    def runs_of(server, c):
        return [r for r in rs_all if r["server"] == server and (r["subscribers_requested"], r["window"]) == c]

    def value(r):
        if r["server"] == "floor":
            return floor_deliveries(r)
        return g(r, "deliveries_per_server_cpu_second")

    header = "| server | " + " | ".join(label(c) for c in columns) + " |"
    out.append("Deliveries per server-CPU-second (median of the runs; 64-byte messages, one server thread):")
    out.append("")
    out.append(header)
    out.append("|---|" + "---|" * len(columns))
    med = {}
    for server in servers:
        cells = []
        for c in columns:
            rs = runs_of(server, c)
            m = median([value(r) for r in rs if r.get("error") == "none"])
            med[(server, c)] = m
            cells.append(fmt_num(m))
        name = SERVER_NAMES[server]
        if server == "floor":
            name = "send floor: bare send(2) of W frames, no WebSocket code"
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    for base in ("beast", "uws", "node", "floor"):
        if base in servers:
            out.append(f"| ratio conduit/{SERVER_NAMES[base]} | " +
                       " | ".join(fmt_ratio(med[("conduit", c)], med[(base, c)]) for c in columns) + " |")
    # The channel path against raw broadcast on the same server: what the
    # conduit.v1 push (JSON framing, about 75 more bytes per delivery) and
    # history cost per message.
    for ch in ("channel", "channel-nohist"):
        if ch in servers and "conduit" in servers:
            out.append(f"| ratio {SERVER_NAMES[ch]}/broadcast | " +
                       " | ".join(fmt_ratio(med[(ch, c)], med[("conduit", c)]) for c in columns) + " |")
    if "channel" in servers and "channel-nohist" in servers:
        out.append("| ratio history on/history off | " +
                   " | ".join(fmt_ratio(med[("channel", c)], med[("channel-nohist", c)]) for c in columns) + " |")
    out.append("")
    out.append("Reference figures (measured on another machine of this kind, uWebSockets included) and how this machine compares:")
    out.append("")
    out.append(header)
    out.append("|---|" + "---|" * len(columns))
    for name in ("uWebSockets", "beast", "node"):
        out.append(f"| {SERVER_NAMES.get(name, name)} (reference machine) | " +
                   " | ".join(fmt_short(ISSUE5[name].get(c)) for c in columns) + " |")
    for name in ("beast", "node"):
        if name in servers:
            out.append(f"| {SERVER_NAMES[name]} here / on the reference machine | " +
                       " | ".join(fmt_ratio(med[(name, c)], ISSUE5[name].get(c)) for c in columns) + " |")
    if "uws" in servers:
        out.append("| uWebSockets here / on the reference machine | " +
                   " | ".join(fmt_ratio(med[("uws", c)], ISSUE5["uWebSockets"].get(c)) for c in columns) + " |")
    out.append("| conduit here / uWebSockets on the reference machine | " +
               " | ".join(fmt_ratio(med[("conduit", c)], ISSUE5["uWebSockets"].get(c)) for c in columns) + " |")
    out.append("")
    out.append("Details per configuration (medians; for the send floor, \"messages\" is rounds of one send per "
               "connection and the latencies do not apply):")
    out.append("")
    out.append("| configuration | server | runs | messages | deliveries/s | server CPU s | p50 µs | p99 µs | problems |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for c in columns:
        for server in servers:
            rs = runs_of(server, c)
            if not rs:
                continue
            problems = "; ".join(p for p in (errors_of(r) for r in rs) if p) or "none"
            if server == "floor":
                rate = median([g(r, "sends") * frames_per_send(r) / g(r, "seconds") for r in rs
                               if g(r, "sends") is not None and g(r, "seconds")])
                cpu = median([g(r, "sender_cpu_seconds") for r in rs])
                p50 = p99 = None
            else:
                rate = median([g(r, "deliveries_per_second") for r in rs])
                cpu = median([g(r, "server_cpu_seconds") for r in rs])
                p50 = median([g(r, "latency", "p50_us") for r in rs])
                p99 = median([g(r, "latency", "p99_us") for r in rs])
            out.append(
                f"| {label(c)} | {SERVER_NAMES[server]} | {len(rs)} | {rs[0]['messages_requested']} | "
                f"{fmt_num(rate)} | {fmt_num(cpu, 2)} | {fmt_num(p50, 1)} | {fmt_num(p99, 1)} | {problems} |"
            )
    return "\n".join(out)


SCALE_NAMES = {"channel": "one node, channels in memory",
               "redis1": "one node + Redis",
               "redis2": "two nodes + Redis"}


def scale_report(runs):
    """scripts/bench-scale: one channel, 1,000 subscribers, one node against two nodes sharing a Redis.
    Server CPU is every server process of the configuration: the node(s) and redis-server."""
    out = []
    rs_all = [r for r in runs if r["scenario"] == "fanout"]
    windows = sorted({r["window"] for r in rs_all}, key=lambda w: (w == 0, -w))
    servers = [s for s in ("channel", "redis1", "redis2") if any(r["server"] == s for r in rs_all)]
    n = rs_all[0]["subscribers_requested"] if rs_all else 0

    def runs_of(server, w):
        return [r for r in rs_all if r["server"] == server and r["window"] == w]

    out.append(f"Deliveries per server-CPU-second (median of the runs; one publisher, {n:,} subscribers of one "
               "channel, 64-character data; server CPU = every server process: the node(s) and redis-server):")
    out.append("")
    out.append("| configuration | " + " | ".join(f"W={w}" for w in windows) + " |")
    out.append("|---|" + "---|" * len(windows))
    med = {}
    for server in servers:
        cells = []
        for w in windows:
            m = median([g(r, "deliveries_per_server_cpu_second") for r in runs_of(server, w) if r.get("error") == "none"])
            med[(server, w)] = m
            cells.append(fmt_num(m))
        out.append(f"| {SCALE_NAMES[server]} | " + " | ".join(cells) + " |")
    for server in ("redis1", "redis2"):
        if server in servers and "channel" in servers:
            out.append(f"| ratio {SCALE_NAMES[server]} / one node in memory | " +
                       " | ".join(fmt_ratio(med[(server, w)], med[("channel", w)]) for w in windows) + " |")
    out.append("")
    out.append("Details (medians): delivery latency is publish request sent → push received by a subscriber; "
               "publish latency is publish request sent → its reply (the offset) received by the publisher.")
    out.append("")
    out.append("| configuration | window | runs | messages | deliveries/s | server CPU s | delivery p50 µs | "
               "delivery p99 µs | publish p50 µs | publish p99 µs | problems |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in windows:
        for server in servers:
            rs = runs_of(server, w)
            if not rs:
                continue
            problems = "; ".join(p for p in (errors_of(r) for r in rs) if p) or "none"
            cells = [median([g(r, "deliveries_per_second") for r in rs]), median([g(r, "server_cpu_seconds") for r in rs]),
                     median([g(r, "latency", "p50_us") for r in rs]), median([g(r, "latency", "p99_us") for r in rs]),
                     median([g(r, "publish_latency", "p50_us") for r in rs]),
                     median([g(r, "publish_latency", "p99_us") for r in rs])]
            out.append(f"| {SCALE_NAMES[server]} | W={w} | {len(rs)} | {rs[0]['messages_requested']} | "
                       f"{fmt_num(cells[0])} | {fmt_num(cells[1], 2)} | " +
                       " | ".join(fmt_num(c, 1) for c in cells[2:]) + f" | {problems} |")
    return "\n".join(out)


def one_line(r):
    """Progress line for one run, printed by scripts/bench as it goes."""
    if r.get("scenario") == "echo":
        main = f"{g(r, 'messages_per_second') or 0:,.0f} msg/s, {g(r, 'messages_per_server_cpu_second') or 0:,.0f} msg per server-CPU-s"
    elif r.get("scenario") == "upgrades":
        main = (f"{g(r, 'upgrades_per_second') or 0:,.0f} upgrades/s, "
                f"{g(r, 'upgrades_per_server_cpu_second') or 0:,.0f} upgrades per server-CPU-s")
    elif r.get("scenario") == "send-floor":
        main = (f"{g(r, 'sends_per_cpu_second') or 0:,.0f} sends per sender-CPU-s "
                f"({g(r, 'us_per_send') or 0:.2f} µs each, {g(r, 'bytes') or 0} bytes)")
    elif r.get("scenario") == "fanout":
        main = (f"{g(r, 'deliveries_per_server_cpu_second') or 0:,.0f} deliveries per server-CPU-s, "
                f"{g(r, 'deliveries') or 0} of {g(r, 'expected_deliveries') or 0} delivered")
    else:
        main = ""
    problems = errors_of(r)
    return main + (f" [{problems}]" if problems else "")


def main():
    if sys.argv[1] == "line":
        print(one_line(json.loads(sys.stdin.read())))
        return
    scenario, runs_path, machine_path, command = sys.argv[1:5]
    with_raw = len(sys.argv) < 6 or sys.argv[5] != "--no-raw"
    runs = load(runs_path)
    with open(machine_path) as f:
        machine = f.read().strip()
    print(f"{'##' if not with_raw else '#'} {scenario} benchmark\n")
    print(f"Command: `{command}`\n")
    print("Machine:\n")
    print("```\n" + machine + "\n```\n")
    reports = {"echo": echo_report, "fanout": fanout_report, "scale": scale_report, "uring": uring_report}
    print(reports[scenario](runs))
    if with_raw:
        print("\nRaw runs (JSON lines, in the order they ran):\n")
        print("```")
        for r in runs:
            print(json.dumps(r, separators=(",", ":")))
        print("```")


if __name__ == "__main__":
    main()
