"""``--plot PATH``: a PNG of time / floor per implementation and case (needs matplotlib)."""

from __future__ import annotations

__all__ = ["plot_report", "require_matplotlib"]

_MISSING = "--plot needs matplotlib, which is not installed: pip install 'fastnorm[plot]'"


def require_matplotlib():
    """The ``matplotlib.figure`` module, or an ImportError saying how to install it."""
    try:
        from matplotlib import figure
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return figure


def _ratio(entry: dict, paths: tuple[str, ...]) -> float | None:
    """The implementation's lowest time / floor over ``paths`` (None: no such path)."""
    ratios = [entry[p]["ratio"] for p in paths if p in entry]
    return min(ratios) if ratios else None


def plot_report(report: dict, path: str) -> None:
    """Grouped bars of time / floor: one row of panels per op, forward and backward.

    The forward bar of an implementation is its faster path (``out=`` or a
    fresh array); the floor (1.0) is drawn as a line.  The y axis is
    logarithmic since the NumPy baseline runs an order of magnitude slower.

    Parameters
    ----------
    report : dict
        As made by :func:`fastnorm.bench.run.run_benchmark`.
    path : str
        Where to write the PNG.
    """
    figure = require_matplotlib()
    sections: dict = {}
    for record in report["cases"]:
        sections.setdefault(record.get("title", "instance norm"), []).append(record)
    names = []
    for record in report["cases"]:
        names += [n for n in record["results"] if n != "floor" and n not in names]
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    directions = (
        ("forward", ("forward", "fresh"), "np.copyto"),
        ("backward", ("backward",), "np.add"),
    )
    widest = max(len(records) for records in sections.values())
    fig = figure.Figure(figsize=(4 + 1.1 * widest * 2, 3.6 * len(sections)), layout="constrained")
    axes = fig.subplots(len(sections), 2, squeeze=False)
    for row, (title, records) in zip(axes, sections.items(), strict=True):
        for ax, (direction, paths, floor) in zip(row, directions, strict=True):
            width = 0.8 / len(names)
            for k, name in enumerate(names):
                xs, ys = [], []
                for i, record in enumerate(records):
                    entry = record["results"].get(name)
                    ratio = None if entry is None else _ratio(entry, paths)
                    if ratio is not None:
                        xs.append(i - 0.4 + (k + 0.5) * width)
                        ys.append(ratio)
                if xs:
                    ax.bar(xs, ys, width, color=colors[name], label=name)
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_xticks(
                range(len(records)),
                [f"{r['shape_text']}\n{r['layout']} {r['dtype']}" for r in records],
                fontsize=7,
            )
            ax.set_title(f"{title}: {direction}", fontsize=10)
            ax.set_ylabel(f"time / {floor} (lower is better)", fontsize=8)
            ax.legend(fontsize=7)
    m = report["machine"]
    fig.suptitle(
        f"fastnorm {report['fastnorm']}, {m['cpu']}, {report['threads']} threads", fontsize=10
    )
    fig.savefig(path, dpi=110)
