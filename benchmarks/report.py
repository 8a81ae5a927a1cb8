"""Turn the saved runs (benchmarks/results/*.json) into benchmarks/RESULTS.md and PNG plots.

    python -m benchmarks.report [--include-quick]

For each machine (a CPU host, or a GPU model) and each suite the newest full run is shown; quick
runs are smoke tests and are left out unless asked for. Nothing here measures anything: every
figure comes from a JSON file written by `python -m benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
FIGURES_DIR = HERE / "figures"
OUT = HERE / "RESULTS.md"
SCHEMA = "gradtensor-benchmarks/1"

ORDER = [
    "gradtensor",
    "gradtensor-nokernels",
    "numpy",
    "cupy",
    "torch",
    "jax",
    "jax-jit",
    "autograd",
]
COLORS = {
    "gradtensor": "C3",
    "gradtensor-nokernels": "C1",
    "numpy": "C0",
    "cupy": "C0",
    "torch": "C2",
    "jax": "C4",
    "jax-jit": "C9",
    "autograd": "C5",
}
SUITE_TITLES = {
    "overhead": "Per-op overhead: a chain of tiny elementwise ops, forward + backward",
    "linear": "Fused linear + activation, forward + backward",
    "mlp": "MLP training step (forward, cross-entropy, backward, SGD)",
    "scaling": "Scaling: MLP step time as batch and width double",
    "memory": "Peak memory of an MLP training step",
}


# -- loading -----------------------------------------------------------------------------------


def load_runs(directory: Path, include_quick: bool) -> tuple[list[dict], list[str]]:
    runs, other = [], []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            other.append(path.name)
            continue
        if data.get("schema") != SCHEMA:
            other.append(path.name)
            continue
        if data["settings"].get("quick") and not include_quick:
            continue
        data["_file"] = path.name
        runs.append(data)
    return runs, other


def machine_key(run: dict[str, Any]) -> tuple[str, str]:
    m = run["machine"]
    if run["settings"]["device"] == "cuda":
        return "cuda", m.get("gpu", "GPU")
    n = run["settings"]["threads"]["requested"]
    return "cpu", (
        f"{m.get('cpu', 'CPU')} ({m.get('cpu_count', '?')} cores, host {m['host']}), "
        f"{n} thread{'s' if n > 1 else ''}"
    )


def latest(runs: list[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    """machine -> suite -> the newest run that has that suite."""
    out: dict[tuple[str, str], dict[str, dict]] = {}
    for run in sorted(runs, key=lambda r: r["machine"]["date"]):
        for suite in run["suites"]:
            out.setdefault(machine_key(run), {})[suite] = run
    return out


# -- formatting --------------------------------------------------------------------------------


def t(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def b(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def keys_of(cases: list[dict]) -> list[str]:
    seen = {k for c in cases for part in ("results", "errors", "skipped") for k in c.get(part, {})}
    return [k for k in ORDER if k in seen]


def label(run: dict, key: str) -> str:
    """The name a run gave an implementation, else the harness's own name for it."""
    from benchmarks.references import LABELS

    return run.get("implementations", {}).get(key) or LABELS.get(key, key)


def cell(case: dict, key: str, value: str) -> str:
    if key in case["results"]:
        return value
    if key in case.get("errors", {}):
        return "dropped†"
    if key in case.get("skipped", {}):
        return "skipped‡"
    return "-"


def timing_table(run: dict, cases: list[dict], extra: str | None = None) -> list[str]:
    keys = keys_of(cases)
    head = ["case"] + [label(run, k) for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cases:
        row = [c["name"]]
        for k in keys:
            r = c["results"].get(k, {})
            value = t(r.get("median_s"))
            if "ratio" in r and k != "gradtensor":
                value += f" ({r['ratio']:.2f}x)"
            if extra and extra in r:
                value += f"<br>{r[extra]:.1f} GFLOP/s" if extra == "gflops_per_s" else ""
            row.append(cell(c, k, value))
        lines.append("| " + " | ".join(row) + " |")
    return lines + footnotes(run, cases)


def footnotes(run: dict, cases: list[dict]) -> list[str]:
    notes = []
    for c in cases:
        for k, msg in c.get("errors", {}).items():
            notes.append(f"- † {label(run, k)}, {c['name']}: {msg}")
        for k, msg in c.get("skipped", {}).items():
            notes.append(f"- ‡ {label(run, k)}, {c['name']}: {msg}")
    # the same reason for every case once is enough
    out, seen = [], set()
    for n in notes:
        key = n.split(":", 1)[0].rsplit(",", 1)[0] + n.split(":", 1)[-1]
        if key not in seen:
            seen.add(key)
            out.append(n)
    return ([""] + out) if out else []


def overhead_table(run: dict, cases: list[dict]) -> list[str]:
    lines = [
        "| implementation | per op | whole chain | time / gradtensor's | check |",
        "|---|---|---|---|---|",
    ]
    for c in cases:
        for k in keys_of([c]):
            if k not in c["results"]:
                continue
            r = c["results"][k]
            lines.append(
                f"| {label(run, k)} | {t(r['per_op_s'])} | {t(r['median_s'])} | "
                f"{r.get('ratio', 1.0):.2f}x | {r['check_max_rel_err']:.1e} |"
            )
    return lines + footnotes(run, cases)


def memory_table(run: dict, cases: list[dict]) -> list[str]:
    keys = keys_of(cases)
    head = ["case"] + [label(run, k) for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cases:
        row = [c["name"]]
        for k in keys:
            r = c["results"].get(k, {})
            value = b(r.get("peak_bytes"))
            if "ratio" in r and k != "gradtensor":
                value += f" ({r['ratio']:.2f}x)"
            if "step_bytes" in r:
                value += f"<br>held {b(r['held_bytes'])}, step {b(r['step_bytes'])}"
            if r.get("traced_peak_bytes") is not None:
                value += f"<br>traced {b(r['traced_peak_bytes'])}"
            row.append(cell(c, k, value))
        lines.append("| " + " | ".join(row) + " |")
    return lines + footnotes(run, cases)


def targets_table(run: dict, suite: str) -> list[str]:
    rows = [r for r in run.get("targets", []) if r["suite"] == suite]
    if not rows:
        return []
    lines = [
        "| target | case | gradtensor / reference | limit | verdict |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        limit = ("< " if r["strict"] else "≤ ") + f"{r['limit']:.2f}"
        if r["met"] is None:
            verdict = "not measured: " + r.get("note", "")
        else:
            verdict = "met" if r["met"] else "**missed**"
            if r.get("provisional"):
                verdict += " (provisional target)"
        lines.append(f"| {r['target']} | {r['case']} | {ratio} | {limit} | {verdict} |")
    return lines


# -- plots -------------------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(ax: Any, run: dict, cases: list[dict], x_of: Any, y_of: Any) -> None:
    for k in keys_of(cases):
        pts = sorted((x_of(c), y_of(c["results"][k])) for c in cases if k in c["results"])
        pts = [(x, y) for x, y in pts if y is not None]
        if pts:
            xs, ys = zip(*pts, strict=True)
            style = "-" if k.startswith("gradtensor") else "--"
            ax.plot(xs, ys, style, marker="o", ms=3, color=COLORS.get(k), label=label(run, k))


def _plain() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:g}")


def _proportional(ax: Any, cases: list[dict], x_of: Any) -> None:
    """A dotted line through gradtensor's first point, growing in step with the flops."""
    pts = sorted((x_of(c), c) for c in cases if "gradtensor" in c["results"])
    if len(pts) < 2:
        return
    f0, t0 = pts[0][1]["params"]["flops"], pts[0][1]["results"]["gradtensor"]["median_s"]
    xs = [x for x, _ in pts]
    ys = [t0 * c["params"]["flops"] / f0 for _, c in pts]
    ax.plot(xs, ys, ":", color="grey", lw=1, label="in proportion to flops")


def plot_suite(run: dict, suite: str, cases: list[dict], path: Path) -> bool:
    """time vs size and ratio vs size; one row per activation (linear) or per series (scaling).

    Linear layers and MLPs are placed in order of their flops, one tick per shape (shapes of
    equal flops, e.g. 65536x64x64 and 256x1024x1024, stay apart); scaling uses its doubling
    batch or width as a log2 axis."""
    if suite == "linear":
        groups: dict[str, list[dict]] = {}
        for c in cases:
            groups.setdefault(c["params"]["activation"], []).append(c)
        tick = lambda c: c["name"].rsplit(" ", 1)[0]  # noqa: E731  "BxIxO"
    elif suite == "mlp":
        groups = {"MLP step": cases}
        tick = lambda c: c["name"].replace(" batch ", "\nbatch ")  # noqa: E731
    elif suite == "scaling":
        groups = {}
        for c in cases:
            groups.setdefault(c["params"]["series"], []).append(c)
        tick = None
    else:
        return False
    plt = _plt()
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.3 * len(groups) + 0.6), squeeze=False)
    for row, (name, group) in zip(axes, groups.items(), strict=True):
        if tick is None:
            x_of = lambda c: c["params"]["value"]  # noqa: E731
        else:
            order = sorted(group, key=lambda c: (c["params"]["flops"], c["name"]))
            pos = {id(c): i for i, c in enumerate(order)}
            x_of = lambda c, pos=pos: pos[id(c)]  # noqa: E731
        _series(row[0], run, group, x_of, lambda r: r["median_s"])
        _series(row[1], run, group, x_of, lambda r: r.get("ratio"))
        row[1].axhline(1.0, color="grey", lw=0.8)
        if tick is None:
            _proportional(row[0], group, x_of)
        for ax, yl in zip(row, ("median time (s)", "time / gradtensor's"), strict=True):
            ax.set_yscale("log")
            ax.set_ylabel(yl)
            ax.grid(True, which="major", alpha=0.3)
            if tick is None:
                ax.set_xscale("log", base=2)
                ax.xaxis.set_major_formatter(_plain())
                ax.set_xlabel("width w (784-w-w-10)" if name == "width" else "batch size")
            else:
                ax.set_xticks(
                    range(len(order)),
                    [tick(c) for c in order],
                    fontsize=7,
                    rotation=20 if suite == "linear" else 0,
                )
                ax.set_xlabel(
                    "in order of flops per " + ("step" if suite == "mlp" else "forward + backward")
                )
        row[0].set_title(f"{name}: time", fontsize=10)
        row[1].set_title(f"{name}: ratio to gradtensor (above 1: slower)", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.45 / (3.3 * len(groups) + 0.6), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return True


# -- the document --------------------------------------------------------------------------------


def settings_lines(run: dict) -> list[str]:
    m, s, v = run["machine"], run["settings"], run["versions"]
    th = s["threads"]
    pools = th.get("pools")
    pools = (
        ", ".join(f"{p['prefix'] or p['internal_api']} {p['num_threads']}" for p in pools)
        if isinstance(pools, list)
        else pools
    )
    where = m.get("gpu") or m.get("cpu", "?")
    vs = ", ".join(f"{k} {v[k]}" for k in sorted(v))
    lines = [
        f"- Run: `{s['command']}` on {m['date']} ({run['_file']}); {where}, "
        f"{m.get('cpu_count')} cores, {m['platform']}.",
        f"- Threads: {th['requested']} for every CPU library (PyTorch {th.get('torch', '-')}, "
        f"Numba {th.get('numba', '-')}, pools: {pools}); JAX: {s.get('jax_threads', '-')}"
        + (f"; {s['settle_s']} s pause before each sample" if s.get("settle_s") else "")
        + ".",
        f"- float32, TF32 off; kernels available: {s['kernels_available']}; "
        f"load average at start {s.get('load_average_at_start', ['?'])[0]:.2f}, "
        f"at end {s.get('load_average_at_end', ['?'])[0]:.2f}.",
        f"- Versions: {vs}.",
    ]
    src = run.get("source") or {}
    if src.get("commit"):
        dirty = src.get("uncommitted_library_changes") or []
        lines.append(
            f"- Source: commit {src['commit'][:10]}"
            + (f", with uncommitted changes to {', '.join(dirty)}" if dirty else "")
            + "."
        )
    if run.get("skipped"):
        lines.append(
            "- Not run: "
            + "; ".join(f"{label(run, k)} ({why})" for k, why in run["skipped"].items())
            + "."
        )
    return lines


def section(run_by_suite: dict[str, dict], figures: Path, out_dir: Path) -> list[str]:
    out: list[str] = []
    shown_runs: list[dict] = []
    for suite in ("overhead", "linear", "mlp", "scaling", "memory"):
        run = run_by_suite.get(suite)
        if run is None:
            continue
        if run not in shown_runs:
            shown_runs.append(run)
        cases = run["suites"][suite]["cases"]
        out += ["", f"### {SUITE_TITLES[suite]}", ""]
        if suite == "overhead":
            out += overhead_table(run, cases)
        elif suite == "memory":
            out += memory_table(run, cases)
        else:
            out += timing_table(run, cases, "gflops_per_s" if suite == "scaling" else None)
        notes = run["suites"][suite].get("notes", [])
        if notes:
            out += [""] + [f"- {n}" for n in notes]
        tgt = targets_table(run, suite)
        if tgt:
            out += ["", "Targets, measured in this run:", ""] + tgt
        tag = Path(run["_file"]).stem
        png = figures / f"{tag}-{suite}.png"
        if plot_suite(run, suite, cases, png):
            out += ["", f"![{suite}]({Path(os.path.relpath(png, out_dir)).as_posix()})"]
    head = []
    for run in shown_runs:
        head += settings_lines(run)
    return head + out


METHOD = """\
How the figures are made (`python -m benchmarks`, see `benchmarks/__main__.py`): every
implementation starts from the same float32 inputs and weights; before anything is timed its
value (output or loss) and every gradient are checked against gradtensor's (max|diff| <= 1e-4 x
max|gradtensor's|), and a row that disagrees is dropped with the error (†). Then each is warmed
up and timed in one process, round-robin, so drift hits all alike; the tables give medians, and
"(1.23x)" is that implementation's median time divided by gradtensor's (above 1: slower than
gradtensor). Every CPU library gets the same thread count (threadpoolctl for NumPy's BLAS,
torch.set_num_threads, Numba; below the core count the process is also pinned to that many
cores, which is what holds XLA); with more than one thread each sample follows a pause, so one
library's busy-waiting worker threads cannot slow the next. ‡ marks an implementation that was
not available or cannot run that case (the note says why)."""


def build(
    include_quick: bool = False,
    results: Path = RESULTS_DIR,
    out: Path = OUT,
    figures: Path = FIGURES_DIR,
) -> str:
    runs, other = load_runs(results, include_quick)
    by_machine = latest(runs)
    doc = [
        "# gradtensor benchmark results",
        "",
        "Generated by `python -m benchmarks.report` from the JSON files in `benchmarks/results/`;",
        "do not edit by hand. To add your machine: `python -m benchmarks` (CPU) or",
        "`python -m benchmarks --device cuda`, commit the JSON, and re-run the report.",
        "",
        METHOD,
    ]
    for device, title in (("cpu", "CPU"), ("cuda", "GPU")):
        found = [(k, v) for k, v in by_machine.items() if k[0] == device]
        if not found:
            doc += [
                "",
                f"## {title}",
                "",
                f"No {title} results yet. "
                + (
                    "They need a machine with an NVIDIA GPU and CuPy: "
                    "`python -m benchmarks --device cuda`. The GPU targets stay unmeasured "
                    "until then."
                    if device == "cuda"
                    else "Run `python -m benchmarks`."
                ),
            ]
        for (_, name), by_suite in found:
            doc += ["", f"## {title}: {name}", ""] + section(by_suite, figures, out.parent)
    if other:
        doc += [
            "",
            "Other result files (per-benchmark scripts, not shown here): "
            + ", ".join(f"`{o}`" for o in other)
            + ".",
        ]
    text = "\n".join(doc) + "\n"
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--include-quick", action="store_true", help="also show --quick runs")
    ap.add_argument("--results", type=Path, default=RESULTS_DIR)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--figures", type=Path, default=FIGURES_DIR)
    args = ap.parse_args(argv)
    build(args.include_quick, args.results, args.out, args.figures)
    print(f"wrote {args.out} and figures under {args.figures}")


if __name__ == "__main__":
    main()
