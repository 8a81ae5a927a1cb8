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

from benchmarks.impls import LABELS
from benchmarks.suites import fmt_bytes as b
from benchmarks.suites import fmt_time as t

HERE = Path(__file__).resolve().parent
RESULTS_DIR, FIGURES_DIR, OUT = HERE / "results", HERE / "figures", HERE / "RESULTS.md"
SCHEMA = "gradtensor-benchmarks/1"
COLORS = dict(gradtensor="C3", numpy="C0", cupy="C0", torch="C2", jax="C4", autograd="C5")
COLORS.update({"gradtensor-nokernels": "C1", "jax-jit": "C9", "kernels": "C6", "gemms": "C7"})
SUITE_TITLES = {
    "overhead": "Per-op overhead: a chain of tiny elementwise ops, forward + backward",
    "linear": "Fused linear + activation, forward + backward",
    "mlp": "MLP training step (forward, cross-entropy, backward, SGD)",
    "scaling": "Scaling: MLP step time as batch and width double",
    "memory": "Peak memory of an MLP training step",
}
AXES = {  # a case's tick label and the x axis's label, by suite
    "linear": (lambda c: c["name"].rsplit(" ", 1)[0], "in order of flops per forward + backward"),
    "mlp": (lambda c: c["name"].replace(" batch ", "\nbatch "), "in order of flops per step"),
    "scaling": (lambda c: str(c["params"]["value"]), "batch size"),
}
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


def load_runs(directory: Path, include_quick: bool) -> tuple[list[dict], list[str]]:
    runs, other = [], []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
        if data.get("schema") != SCHEMA:
            other.append(path.name)
        elif include_quick or not data["settings"].get("quick"):
            runs.append({**data, "_file": path.name})
    return runs, other


def machine_key(run: dict[str, Any]) -> tuple[str, str]:
    m, n = run["machine"], run["settings"]["threads"]["requested"]
    if run["settings"]["device"] == "cuda":
        return "cuda", m.get("gpu", "GPU")
    return "cpu", (f"{m.get('cpu', 'CPU')} ({m.get('cpu_count', '?')} cores, host {m['host']}), "
                   f"{n} thread{'s' if n > 1 else ''}")  # fmt: skip


def keys_of(cases: list[dict]) -> list[str]:
    seen = {k for c in cases for part in ("results", "errors", "skipped") for k in c.get(part, {})}
    return [k for k in LABELS if k in seen]


def label(run: dict, key: str) -> str:
    """The name a run gave an implementation, else the harness's own name for it."""
    return run.get("implementations", {}).get(key) or LABELS.get(key, key)


def footnotes(run: dict, cases: list[dict]) -> list[str]:
    out, seen = [], set()
    for c in cases:
        for part, mark in (("errors", "†"), ("skipped", "‡")):
            for k, msg in c.get(part, {}).items():
                if (mark, k, msg) not in seen:  # the same reason for every case once is enough
                    seen.add((mark, k, msg))
                    out.append(f"- {mark} {label(run, k)}, {c['name']}: {msg}")
    return [""] + out if out else []


def ratio(r: dict, k: str) -> str:
    return f" ({r['ratio']:.2f}x)" if "ratio" in r and k != "gradtensor" else ""


def timing(r: dict, k: str) -> str:
    gflops = f"<br>{r['gflops_per_s']:.1f} GFLOP/s" if "gflops_per_s" in r else ""
    return t(r.get("median_s")) + ratio(r, k) + gflops


def memory(r: dict, k: str) -> str:
    v = b(r.get("peak_bytes")) + ratio(r, k)
    if "step_bytes" in r:
        v += f"<br>held {b(r['held_bytes'])}, step {b(r['step_bytes'])}"
    traced = r.get("traced_peak_bytes")
    return v + (f"<br>traced {b(traced)}" if traced is not None else "")


def md(head: list[str], rows: list[list[str]]) -> list[str]:
    line = lambda cells: "| " + " | ".join(cells) + " |"
    return [line(head), "|" + "---|" * len(head)] + [line(r) for r in rows]


def table(run: dict, cases: list[dict], fmt: Any) -> list[str]:
    """One row per case, one column per implementation."""
    keys, rows = keys_of(cases), []
    for c in cases:
        marks = {k: m for part, m in (("errors", "dropped†"), ("skipped", "skipped‡"))
                 for k in c.get(part, {})}  # fmt: skip
        rows.append([c["name"]] + [fmt(c["results"][k], k) if k in c["results"] else
                                   marks.get(k, "-") for k in keys])  # fmt: skip
    return md(["case"] + [label(run, k) for k in keys], rows) + footnotes(run, cases)


def overhead_table(run: dict, cases: list[dict]) -> list[str]:
    head = ["implementation", "per op", "whole chain", "time / gradtensor's", "check"]
    rows = [[label(run, k), t(r["per_op_s"]), t(r["median_s"]), f"{r.get('ratio', 1.0):.2f}x",
             f"{r['check_max_rel_err']:.1e}"] for c in cases for k, r in
            ((k, c["results"][k]) for k in keys_of([c]) if k in c["results"])]  # fmt: skip
    return md(head, rows) + footnotes(run, cases)


def targets_table(run: dict, suite: str) -> list[str]:
    rows = []
    for r in (r for r in run.get("targets", []) if r["suite"] == suite):
        verdict = "not measured: " + r.get("note", "")
        if r["met"] is not None:
            verdict = "met" if r["met"] else "**missed**"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        limit = ("< " if r["strict"] else "≤ ") + f"{r['limit']:.2f}"
        rows.append([r["target"], r["case"], ratio, limit, verdict])
    head = ["target", "case", "gradtensor / reference", "limit", "verdict"]
    return md(head, rows) if rows else []


def plot_suite(run: dict, suite: str, cases: list[dict], path: Path) -> bool:
    """Time and ratio to gradtensor's, case by case in order of flops (scaling's batches and
    widths double), a row per activation or series; scaling adds a line in step with the flops."""
    if suite not in ("linear", "mlp", "scaling"):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict]] = {}
    for c in cases:
        p = c["params"]
        groups.setdefault(p.get("activation") or p.get("series") or "MLP step", []).append(c)
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.3 * len(groups) + 0.6), squeeze=False)
    for row, (name, group) in zip(axes, groups.items()):
        group.sort(key=lambda c: (c["params"]["flops"], c["name"]))
        tick, xlabel = AXES[suite]
        xlabel = "width w (784-w-w-10)" if name == "width" else xlabel
        for ax, y_of in zip(row, (lambda r: r["median_s"], lambda r: r.get("ratio"))):
            for k in keys_of(group):
                pts = [(i, y_of(c["results"][k])) for i, c in enumerate(group) if k in c["results"]]
                if pts := [p for p in pts if p[1] is not None]:
                    style = "-" if k.startswith("gradtensor") else "--"
                    ax.plot(*zip(*pts), style, marker="o", ms=3, color=COLORS.get(k),
                            label=label(run, k))  # fmt: skip
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            ticks = [tick(c) for c in group]
            ax.set_xticks(range(len(group)), ticks, fontsize=7, rotation=20 * (suite == "linear"))
            ax.set_xlabel(xlabel)
        base = [(i, c) for i, c in enumerate(group) if "gradtensor" in c["results"]]
        if suite == "scaling" and len(base) > 1:
            t0, f0 = base[0][1]["results"]["gradtensor"]["median_s"], base[0][1]["params"]["flops"]
            ys = [t0 * c["params"]["flops"] / f0 for _, c in base]
            row[0].plot([i for i, _ in base], ys, ":", color="grey", lw=1,
                        label="in proportion to flops")  # fmt: skip
        row[1].axhline(1.0, color="grey", lw=0.8)
        for ax, title, ylabel in zip(row, ("time", "ratio to gradtensor (above 1: slower)"),
                                     ("median time (s)", "time / gradtensor's")):  # fmt: skip
            ax.set_title(f"{name}: {title}", fontsize=10)
            ax.set_ylabel(ylabel)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8,
               frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0.45 / (3.3 * len(groups) + 0.6), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return True


def settings_lines(run: dict) -> list[str]:
    m, s, v, th = run["machine"], run["settings"], run["versions"], run["settings"]["threads"]
    pools = th.get("pools")
    if isinstance(pools, list):
        pools = ", ".join(f"{p['prefix'] or p['internal_api']} {p['num_threads']}" for p in pools)
    pause = f"; {s['settle_s']} s pause before each sample" if s.get("settle_s") else ""
    src = run.get("source") or {}
    dirty = ", ".join(src.get("uncommitted_library_changes") or [])
    why = "; ".join(f"{label(run, k)} ({w})" for k, w in run.get("skipped", {}).items())
    lines = [
        f"- Run: `{s['command']}` on {m['date']} ({run['_file']}); "
        f"{m.get('gpu') or m.get('cpu', '?')}, {m.get('cpu_count')} cores, {m['platform']}.",
        f"- Threads: {th['requested']} for every CPU library (PyTorch {th.get('torch', '-')}, "
        f"Numba {th.get('numba', '-')}, pools: {pools}); JAX: {s.get('jax_threads', '-')}{pause}.",
        f"- float32, TF32 off; kernels available: {s['kernels_available']}; load average at start "
        f"{s['load_average_at_start'][0]:.2f}, at end {s['load_average_at_end'][0]:.2f}.",
        "- Versions: " + ", ".join(f"{k} {v[k]}" for k in sorted(v)) + ".",
    ]
    if src.get("commit"):
        changes = f", with uncommitted changes to {dirty}" if dirty else ""
        lines.append(f"- Source: commit {src['commit'][:10]}{changes}.")
    return lines + [f"- Not run: {why}."] * bool(why)


def section(run_by_suite: dict[str, dict], figures: Path, out_dir: Path) -> list[str]:
    out: list[str] = []
    shown: list[dict] = []
    for suite in SUITE_TITLES:
        run = run_by_suite.get(suite)
        if run is None:
            continue
        shown += [run] if run not in shown else []
        cases = run["suites"][suite]["cases"]
        out += ["", f"### {SUITE_TITLES[suite]}", ""]
        if suite == "overhead":
            out += overhead_table(run, cases)
        else:
            out += table(run, cases, memory if suite == "memory" else timing)
        notes = [f"- {n}" for n in run["suites"][suite].get("notes", [])]
        out += ["", *notes] if notes else []
        tgt = targets_table(run, suite)
        out += ["", "Targets, measured in this run:", "", *tgt] if tgt else []
        png = figures / f"{Path(run['_file']).stem}-{suite}.png"
        if plot_suite(run, suite, cases, png):
            out += ["", f"![{suite}]({Path(os.path.relpath(png, out_dir)).as_posix()})"]
    return [line for run in shown for line in settings_lines(run)] + out


def build(include_quick: bool = False, results: Path = RESULTS_DIR, out: Path = OUT,
          figures: Path = FIGURES_DIR) -> str:  # fmt: skip
    runs, other = load_runs(results, include_quick)
    latest: dict[tuple[str, str], dict[str, dict]] = {}  # machine -> suite -> newest run with it
    for run in sorted(runs, key=lambda r: r["machine"]["date"]):
        for suite in run["suites"]:
            latest.setdefault(machine_key(run), {})[suite] = run
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
        found = [(k, v) for k, v in latest.items() if k[0] == device]
        if not found:
            doc += ["", f"## {title}", "", f"No {title} results yet. " + (
                "They need a machine with an NVIDIA GPU and CuPy: `python -m benchmarks --device "
                "cuda`. The GPU targets stay unmeasured until then." if device == "cuda"
                else "Run `python -m benchmarks`.")]  # fmt: skip
        for (_, name), by_suite in found:
            doc += ["", f"## {title}: {name}", ""] + section(by_suite, figures, out.parent)
    if other:
        names = ", ".join(f"`{o}`" for o in other)
        doc += ["", f"Other result files (per-benchmark scripts, not shown here): {names}."]
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
