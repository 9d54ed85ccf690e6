"""Text output: the benchmark table, the speedups over peers, the concurrency table."""

from __future__ import annotations

__all__ = ["format_table", "render", "render_concurrency"]


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _cells(entry: dict | None, op: str, with_gbps: bool) -> list[str]:
    if entry is None or op not in entry:
        return ["-"] * (3 if with_gbps else 2)
    m = entry[op]
    cells = [_fmt_time(m["seconds"]), f"{m['ratio']:.2f}"]
    if with_gbps:
        cells.insert(1, f"{m['gbps']:.1f}")
    return cells


HEADER = (
    "case",
    "layout",
    "dtype",
    "impl",
    "fwd out=",
    "GB/s",
    "x floor",
    "fwd fresh",
    "x floor",
    "bwd out=",
    "GB/s",
    "x floor",
    "matches ref",
)


def _case_rows(record: dict) -> list[list[str]]:
    rows = []
    results = dict(record["results"])
    names = list(results) + list(record["unavailable"])
    for i, name in enumerate(names):
        lead = ["", "", ""]
        if i == 0:
            lead = [record["shape_text"], record["layout"], record["dtype"]]
        entry = results.get(name)
        if entry is None:
            rows.append([*lead, name, record["unavailable"][name]] + [""] * 8)
            continue
        match = "-"
        if "match" in entry:
            match = "yes" if entry["match"] else f"NO ({entry['max_error']:.1e})"
        rows.append(
            [
                *lead,
                name,
                *_cells(entry, "forward", True),
                *_cells(entry, "fresh", False),
                *_cells(entry, "backward", True),
                match,
            ]
        )
    return rows


def format_table(rows: list[list[str]]) -> str:
    """Left-aligned text columns; the 'n/a' filler rows may overflow."""
    widths = [max(len(r[i]) for r in rows if len(r[i]) < 40) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if len(c) < 40 else c for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _peer_speedups(record: dict) -> str:
    """fastnorm's lead over the fastest installed peer, per op."""
    res = record["results"]
    ours = res.get("fastnorm", {})
    parts = []
    for op, peer_ops in (("forward", ("forward", "fresh")), ("backward", ("backward",))):
        peers = [
            m[o]["seconds"]
            for name, m in res.items()
            if name not in ("fastnorm", "numpy", "floor")
            for o in peer_ops
            if o in m
        ]
        if peers and op in ours:
            parts.append(f"{op} {min(peers) / ours[op]['seconds']:.1f}x")
    return ", ".join(parts)


def render(report: dict) -> str:
    """The text table of a report made by :func:`run_benchmark`."""
    rows = [list(HEADER)]
    leads = []
    for record in report["cases"]:
        rows.extend(_case_rows(record))
        lead = _peer_speedups(record)
        if lead:
            leads.append(f"  {record['shape_text']} {record['dtype']}: {lead}")
    m = report["machine"]
    text = [
        f"fastnorm {report['fastnorm']} on {m['cpu']} ({m['cpus']} CPUs), "
        f"{report['threads']} threads ({m['threading_layer']}); "
        f"median of {report['rounds']} interleaved rounds",
        "floor: forward np.copyto(out, x), backward np.add(dy, x, out=dx); "
        "'x floor' = time / floor in the same round (lower is better)",
        "",
        format_table(rows),
    ]
    if report["skipped"]:
        text.append("")
        text.extend(f"skipped {name}: {why}" for name, why in report["skipped"].items())
    if leads:
        text += ["", "fastnorm speedup over the fastest installed peer (peer time / ours):", *leads]
    return "\n".join(text)


def render_concurrency(c: dict) -> str:
    rows = [
        ["mode", "calls", "time", "calls/s"],
        [
            "sequential",
            str(c["calls"]),
            _fmt_time(c["sequential_seconds"]),
            f"{c['sequential_calls_per_s']:.0f}",
        ],
        [
            f"{c['threads']} threads",
            str(c["calls"]),
            _fmt_time(c["concurrent_seconds"]),
            f"{c['concurrent_calls_per_s']:.0f}",
        ],
    ]
    return "\n".join(
        [
            f"concurrency: {c['threads']} Python threads x {c['calls'] // c['threads']} calls "
            "(mixed shapes, dtypes, forward and backward; public API, out=)",
            format_table(rows),
            f"throughput concurrent / sequential: {c['ratio']:.2f}x (>= 1: no collapse); "
            f"results identical: {'yes' if c['identical'] else 'NO'}",
        ]
    )
