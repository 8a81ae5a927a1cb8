"""benchmarks/gpu_session.sh end to end on the CPU, through the strict CuPy stand-in.

A lent GPU comes for minutes at a time: these runs make sure its first use cannot be lost to
plumbing (files, folders, the JSON record, the deadline, killing a part that overruns).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = {
    "versions",
    "kernels",
    "cuda_tests",
    "cuda_graph",
    "compute_sanitizer",
    "path_timings",
    "mlp_vs_torch",
    "compile_and_nccl",
}


def session(out: Path, deadline: float, *args: str, pytest_args: str = "tests") -> float:
    env = {
        **os.environ,
        "GPU_CHECK_STANDIN": "1",
        "OUT": str(out),
        "GPU_CHECK_DEADLINE_S": str(deadline),
        "GPU_CHECK_PYTEST_ARGS": pytest_args,
        "PYTHON": sys.executable,
    }
    t0 = time.monotonic()
    done = subprocess.run(
        ["bash", "benchmarks/gpu_session.sh", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=deadline + 30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return time.monotonic() - t0


def check_files(out: Path) -> dict:
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 0 < len(files) <= 6, files
    assert all(len(p.relative_to(out).parts) <= 3 for p in files), files  # two folders down
    record = json.loads((out / "results.json").read_text())
    assert set(record["parts"]) == PARTS
    for name, part in record["parts"].items():
        assert part["status"] in ("ok", "failed", "skipped"), (name, part)
        assert part["status"] == "ok" or part["reason"], (name, part)
        assert part["seconds"] >= 0
    return record


def test_every_part_reports_and_gpu_parts_say_why_they_skip(tmp_path):
    out = tmp_path / "gpu"
    elapsed = session(out, 30, pytest_args="tests/test_gpu.py -k repr")
    parts = check_files(out)["parts"]
    assert elapsed < 30
    assert parts["versions"]["status"] == "ok"
    assert parts["versions"]["cupy_device"]["compute_capability"] == "90"
    assert "1 passed" in parts["cuda_tests"]["summary"], parts["cuda_tests"]
    assert (out / "tests.txt").exists()
    for name in PARTS - {"versions", "cuda_tests"}:
        assert parts[name]["status"] == "skipped"
        assert "stand-in" in parts[name]["reason"]


def test_a_part_that_overruns_is_stopped_at_the_deadline(tmp_path):
    out = tmp_path / "gpu"
    elapsed = session(out, 8, "--only", "c")  # every cuda test: far more than 8 s here
    parts = check_files(out)["parts"]
    assert elapsed < 8 + 3  # the driver's start and a margin
    assert parts["cuda_tests"]["status"] == "failed"
    assert "stopped after" in parts["cuda_tests"]["reason"]
    assert parts["kernels"]["reason"] == "not asked for (--only)"


def test_missing_cupy_names_the_extras(monkeypatch):
    import gradtensor as gt
    from gradtensor import backend

    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_error", None)
    monkeypatch.setitem(sys.modules, "cupy", None)  # what an environment without CuPy shows
    reason = gt.cuda.unavailable_reason()
    assert reason.startswith("CuPy could not be imported")
    assert '"gradtensor[cuda12]"' in reason and '"gradtensor[cuda13]"' in reason
