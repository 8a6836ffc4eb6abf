#!/usr/bin/env python3
"""Render benches/compare.sh's results: an SVG plot (deliveries per second and p99 latency
per scenario for queuehub and the Node hub, on log scales, with the bench tool's own ceiling
where it applies, and the idle memory per socket) and, on stdout, a Markdown table.

    python3 benches/plot.py results.json plot.svg

Standard library only.
"""

import json
import math
import sys
from html import escape

SERVERS = [("queuehub", "#2b6cb0"), ("node-hub", "#c05621")]
CEILING_COLOR = "#a0aec0"
# Which selftest report (by position) is the tool's ceiling for a scenario: publish, batched,
# fanout at 2 500 msg/s, then (runs since 2026-11-30 16:00) fanout at 50 msg/s, whose latency
# is the tool's own floor.
CEILING_OF = {"publish": 0, "publish-batch": 1, "fanout-50": 3, "fanout-500": 2}
# Where the selftest's latency is a floor worth drawing beside the servers' p99.
FLOOR_OF = {"fanout-50"}


def fmt(value, digits=0):
    if value is None:
        return "–"
    if digits == 0:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.{digits}f}"


def latency(report, key):
    lat = (report or {}).get("latency_ms") or {}
    return lat.get(key)


def cores(report, who):
    """CPU cores a process used over the scenario (CPU seconds / wall seconds)."""
    if (report or {}).get("status") in ("skipped", "failed"):
        return "–"  # over a moment of set-up, a tick of CPU time reads as a core
    value = ((report or {}).get("extra") or {}).get(f"{who}_cores")
    return "–" if value is None else f"{value:.2f}"


def note(report):
    """What a reader needs besides throughput and latency."""
    if report is None:
        return "no report"
    extra = report.get("extra") or {}
    parts = []
    if report["status"] in ("skipped", "failed"):
        return f"{report['status']}: {report.get('note') or ''}"
    if report["status"] != "complete":
        parts.append(f"**{report['status']}**")
    if report["scenario"] == "idle":
        if "rss_per_socket_bytes" in extra:
            parts.append(f"{extra['rss_per_socket_bytes'] / 1024:.1f} KiB RSS per socket")
        parts.append(f"{fmt(extra.get('sockets_per_s'))} sockets/s subscribed")
    if report["scenario"] == "catchup":
        parts.append(f"total {report['elapsed_s']:.2f} s")
    if "offered_deliveries_per_s" in extra:
        parts.append(f"offered {fmt(extra['offered_deliveries_per_s'])}/s")
    if report.get("missing") or report.get("duplicates"):
        parts.append(f"missing {report['missing']}, duplicates {report['duplicates']}")
    if report.get("server_errors"):
        error = report.get("first_error") or ""
        code = error.split('"code":"')[1].split('"')[0] if '"code":"' in error else "see the report"
        parts.append(f"{fmt(report['server_errors'])} events refused by the server ({code}, e.g. acks)")
    return "; ".join(parts)


def markdown(results):
    lines = [
        "| scenario | server | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | server cores | bench cores | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for scenario in results["scenarios"]:
        for server, _ in SERVERS:
            report = scenario["reports"].get(server)
            measured = report and report["status"] not in ("skipped", "failed")
            rate = report["deliveries_per_s"] if measured and scenario["id"] != "idle" else None
            lines.append(
                f"| {scenario['title']} | {server} | {fmt(rate)} | "
                + " | ".join(fmt(latency(report, k), 2) for k in ("p50", "p90", "p99", "max"))
                + f" | {cores(report, 'server')} | {cores(report, 'bench')} | {note(report)} |"
            )
    selftest = results.get("selftest") or []
    if selftest:
        lines.append("")
        lines.append("| the tool's ceiling: against its trivial built-in server | deliveries/s | p50 ms | p99 ms | bench cores |")
        lines.append("|---|---:|---:|---:|---:|")
        for report in selftest:
            load = report["params"]["load"]
            what = (
                f"{report['scenario']}: {report['subscribers']} subscribers, {fmt(load['total'])} messages"
                + (f" in arrays of {load['batch']}" if load.get("batch") else "")
                + (f" at {fmt(load['rate'])} msg/s" if load.get("rate") else "")
            )
            offered = (report.get("extra") or {}).get("offered_deliveries_per_s")
            if offered:
                what += f" (offered {fmt(offered)} deliveries/s)"
            lines.append(f"| {what} | {fmt(report['deliveries_per_s'])} | {fmt(latency(report, 'p50'), 2)} | {fmt(latency(report, 'p99'), 2)} | {cores(report, 'bench')} |")
    return "\n".join(lines)


class Svg:
    def __init__(self, width):
        self.width = width
        self.parts = []
        self.height = 0

    def text(self, x, y, s, size=12, anchor="start", weight="normal", color="#1a202c"):
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{color}">{escape(s)}</text>'
        )

    def rect(self, x, y, w, h, color):
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h:.1f}" fill="{color}"/>')

    def line(self, x1, y1, x2, y2, color="#e2e8f0", dash=None):
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}"{extra}/>')

    def render(self):
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">'
            f'<rect width="100%" height="100%" fill="white"/>'
        )
        return head + "".join(self.parts) + "</svg>\n"


LABEL_W, PLOT_W, BAR_H = 220, 560, 13


def log_panel(svg, y, title, rows, unit):
    """rows: [(label, [(value or None, color, text when None)])] on a shared log scale."""
    values = [v for _, bars in rows for v, _, _ in bars if v]
    lo = 10 ** math.floor(math.log10(min(values))) if values else 1
    hi = 10 ** math.ceil(math.log10(max(values))) if values else 10
    hi = max(hi, lo * 10)
    x0 = LABEL_W

    def x(v):
        return x0 + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * PLOT_W

    svg.text(20, y + 16, title, size=15, weight="bold")
    y += 30
    top = y
    height = sum(len(bars) * (BAR_H + 2) + 12 for _, bars in rows)
    decade = lo
    while decade <= hi * 1.0001:
        svg.line(x(decade), top - 4, x(decade), top + height, color="#e2e8f0")
        svg.text(x(decade), top + height + 14, f"{fmt(decade) if decade >= 1 else decade:}", size=10, anchor="middle", color="#4a5568")
        decade *= 10
    svg.text(x0 + PLOT_W, top + height + 28, unit, size=10, anchor="end", color="#4a5568")
    for label, bars in rows:
        svg.text(x0 - 8, y + (len(bars) * (BAR_H + 2)) / 2 + 4, label, size=11, anchor="end")
        for value, color, missing in bars:
            if value:
                svg.rect(x0, y, x(value) - x0, BAR_H, color)
                label = (missing if color == CEILING_COLOR else "") + fmt(value, 0 if value >= 10 else 2)
                svg.text(x(value) + 4, y + BAR_H - 2, label, size=10, color="#2d3748")
            else:
                svg.text(x0 + 4, y + BAR_H - 2, missing, size=10, color="#718096")
            y += BAR_H + 2
        y += 12
    return top + height + 40


def legend(svg, y, with_ceiling):
    x = LABEL_W
    entries = list(SERVERS) + ([("the bench against a trivial server (its ceiling; for latency, its floor)", CEILING_COLOR)] if with_ceiling else [])
    for name, color in entries:
        svg.rect(x, y, 12, 12, color)
        svg.text(x + 16, y + 10, name, size=11)
        x += 30 + 7 * len(name)
    return y + 24


def plot(results):
    svg = Svg(LABEL_W + PLOT_W + 110)
    machine = results.get("machine", {})
    svg.text(20, 26, "queuehub vs the Node hub, measured by queuehub-bench in one run", size=17, weight="bold")
    loads = [float(v.split()[0]) for s in results["scenarios"]
             for v in (s.get("loadavg_before") or {}).values() if v]
    busy = f"; load average {min(loads):.1f}–{max(loads):.1f} before the runs" if loads else ""
    svg.text(20, 44, f"{machine.get('cpus', '?')} cores shared by the server, the load tool and other work"
             f"{busy}; {results.get('generated', '')}; commit {machine.get('commit', '?')}", size=11, color="#4a5568")
    y = legend(svg, 56, True)
    selftest = results.get("selftest") or []
    moving = [s for s in results["scenarios"] if s["id"] != "idle"]

    def bars(scenario, value_of, ceiling, throughput=False):
        out = []
        for server, color in SERVERS:
            report = scenario["reports"].get(server)
            if report is None:
                out.append((None, color, f"{server}: no report"))
            elif report["status"] in ("skipped", "failed"):
                reason = (report.get("note") or "").split(":")[0]
                out.append((None, color, f"{server}: {report['status']} ({reason})"))
            else:
                out.append((value_of(report), color, f"{server}: none"))
        index = CEILING_OF.get(scenario["id"])
        if index is not None and index >= len(selftest):
            index = CEILING_OF["fanout-500"] if scenario["id"] == "fanout-50" else None
        if ceiling and index is not None and index < len(selftest):
            report = selftest[index]
            offered = (report.get("extra") or {}).get("offered_deliveries_per_s")
            # A ceiling run that delivered all it was offered only shows a lower bound.
            all_taken = offered and report["deliveries_per_s"] >= 0.97 * offered
            bound = "≥ " if throughput and all_taken else ""
            out.append((value_of(report), CEILING_COLOR, bound))
        return out

    rows = [(s["short"], bars(s, lambda r: r["deliveries_per_s"] or None, True, throughput=True))
            for s in moving]
    y = log_panel(svg, y, "Deliveries per second (more is better)", rows, "deliveries/s, log scale")
    # Catch-up has no publish time to count from: its latency is the arrival since reconnecting.
    rows = [(s["short"] + (", since reconnect" if s["id"] == "catchup" else ""),
             bars(s, lambda r: latency(r, "p99"), s["id"] in FLOOR_OF and len(selftest) > 3))
            for s in moving]
    y = log_panel(svg, y, "p99 latency, publish → delivery (less is better)", rows, "ms, log scale")
    idle = [s for s in results["scenarios"] if s["id"] == "idle"]
    if idle:
        def per_socket(report):
            value = (report.get("extra") or {}).get("rss_per_socket_bytes")
            return value / 1024 if value and value > 0 else None
        y = log_panel(svg, y, idle[0]["title"] + ": server memory per socket (less is better)",
                      [("VmRSS growth / sockets", bars(idle[0], per_socket, False))], "KiB per socket, log scale")
    svg.height = int(y)
    return svg.render()


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py results.json plot.svg")
    with open(sys.argv[1]) as f:
        results = json.load(f)
    with open(sys.argv[2], "w") as f:
        f.write(plot(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
