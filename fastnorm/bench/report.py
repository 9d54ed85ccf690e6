"""Text output: the benchmark table, the speedups over peers, the concurrency table."""

from __future__ import annotations

from .cases import OFFSET_TEXT

__all__ = ["format_table", "peer_speedups", "render", "render_concurrency"]


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _cells(entry: dict | None, path: str, with_gbps: bool) -> list[str]:
    if entry is None or path not in entry:
        return ["-"] * (3 if with_gbps else 2)
    m = entry[path]
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
    f"err {OFFSET_TEXT}+ y / dx",
)


def _offset_cell(entry: dict) -> str:
    errors = entry.get("offset_error") or {}
    return " / ".join(f"{errors[k]:.1e}" if k in errors else "-" for k in ("y", "dx"))


def _case_rows(record: dict) -> list[list[str]]:
    rows = []
    results = dict(record["results"])
    results.pop("floor", None)
    names = list(results) + list(record["unavailable"])
    for i, name in enumerate(names):
        lead = ["", "", ""]
        if i == 0:
            lead = [record["shape_text"], record["layout"], record["dtype"]]
        entry = results.get(name)
        if entry is None:
            rows.append([*lead, name, record["unavailable"][name]])
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
                _offset_cell(entry),
            ]
        )
    return rows


def format_table(rows: list[list[str]]) -> str:
    """Left-aligned text columns.

    Rows shorter than the header (an implementation that cannot run a case,
    with the reason as its last cell) take the widths of the full rows and
    let their last cell overflow.
    """
    full = [r for r in rows if len(r) == len(rows[0])]
    widths = [max(len(r[i]) for r in full) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def peer_speedups(record: dict) -> str:
    """fastnorm's speedup over the fastest peer path, per direction, as text."""
    parts = []
    for direction, m in record.get("vs_fastest_peer", {}).items():
        slower = " (slower)" if m["speedup"] < 1 else ""
        parts.append(
            f"{direction} {m['speedup']:.2f}x{slower} vs {m['peer']} {m['peer_path']}"
            f" (ours: {m['path']})"
        )
    return ", ".join(parts)


def _sections(report: dict) -> dict:
    """Records by table title, in the order they ran."""
    sections: dict = {}
    for record in report["cases"]:
        sections.setdefault(record.get("title", "instance norm"), []).append(record)
    return sections


def render(report: dict) -> str:
    """The text tables (one per op) of a report made by :func:`run_benchmark`."""
    m = report["machine"]
    text = [
        f"fastnorm {report['fastnorm']} on {m['cpu']} ({m['cpus']} CPUs), "
        f"{report['threads']} threads ({m['threading_layer']}); "
        f"median of {report['rounds']} interleaved rounds",
        "floor: forward np.copyto(out, x), backward np.add(dy, x, out=dx); "
        "'x floor' = time / floor in the same round (lower is better)",
        f"'parallel floor': the same copy and add split between the {report['threads']} "
        "threads (one core's floor understates what the threads can move)",
        f"'err {OFFSET_TEXT}+': max absolute error of y and dx against float64 math on "
        f"x = {OFFSET_TEXT} + N(0, 1); both checks cover the leading samples, up to 2^20 "
        "elements",
    ]
    leads, notes = [], {}
    for title, records in _sections(report).items():
        rows = [list(HEADER)]
        for record in records:
            rows.extend(_case_rows(record))
            lead = peer_speedups(record)
            if lead:
                case = f"{record['shape_text']} {record['layout']} {record['dtype']}"
                leads.append(f"  {case}: {lead}")
            for name, note in record.get("notes", {}).items():
                notes.setdefault(f"{name}, {title}: {note}", None)
        text += ["", title, format_table(rows)]
    if report["skipped"]:
        text.append("")
        text.extend(f"skipped {name}: {why}" for name, why in report["skipped"].items())
    if notes:
        text += ["", *(f"note: {note}" for note in notes)]
    if leads:
        text += [
            "",
            "fastnorm speedup over the fastest path of any installed peer "
            "(median of per-round peer time / ours; best path on each side):",
            *leads,
        ]
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
