"""gradtensor installed where nothing can be written (its wheel in a fresh virtual environment, the
package folder and HOME read-only) still runs its kernels, caching them in a temporary folder, and
says so once; kernels compiled at install time load instead of compiling again."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import warnings
warnings.simplefilter("always")
import gradtensor as gt, gradtensor.nn.functional as F
x = gt.randn(4, 3, requires_grad=True)
w = gt.randn(5, 3, requires_grad=True)
F.linear(x, w, activation="gelu").sum().backward()
opt = gt.optim.Adam([w])
opt.step()
print("ok", round(gt.erf(gt.ones(1)).item(), 4), tuple(x.grad.shape))
"""


def _read_only_run(
    site: Path, home: Path, tmp: Path, read_only: bool = True, python: str = sys.executable
) -> subprocess.CompletedProcess:
    """Run SCRIPT with `site` and `home` bind-mounted read-only in a mount namespace of its own
    (or writable, to prepare an install)."""
    mounts = " && ".join(
        f"mount --bind {d} {d} && mount -o remount,bind,ro {d}" for d in (site, home)
    )
    probe = f"! touch {site}/probe 2>/dev/null && ! touch {home}/probe 2>/dev/null"
    if not read_only:
        mounts, probe = "true", f"touch {site}/probe && rm {site}/probe"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    env.update(HOME=str(home), PYTHONPATH=str(site), TMPDIR=str(tmp))
    cmd = ["unshare", "-m", "sh", "-c", f'{mounts} && {probe} && exec "$0" -c "$1"']
    return subprocess.run(
        [*cmd, python, SCRIPT], capture_output=True, text=True, env=env, cwd=tmp, timeout=600,
    )  # fmt: skip


def _install_wheel(tmp_path: Path) -> tuple[str, Path]:
    """The project built as a wheel and installed into a fresh virtual environment, which finds
    the dependencies in this one: (its python, its site-packages)."""
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT))
    assert built.returncode == 0, built.stderr[-4000:]
    made = run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    )
    wheel = next(dist.glob("gradtensor-*.whl"))
    done = run(
        sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)
    )
    assert done.returncode == 0, done.stderr[-4000:]
    deps = sysconfig.get_path("purelib")  # numpy, numba...: where this interpreter has them
    (site / "dependencies.pth").write_text(deps + "\n")
    return python, site


def _can_mount_read_only() -> str | None:
    if shutil.which("unshare") is None:
        return "needs util-linux's unshare to make folders read-only in a mount namespace"
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind / /mnt 2>/dev/null || mount -t tmpfs t /mnt"],
        capture_output=True,
    )
    if done.returncode != 0:
        return (
            "needs permission for a mount namespace (root, or user namespaces) to mount read-only"
        )
    return None


@pytest.mark.slow
def test_a_read_only_install_with_a_read_only_home_runs_and_caches_elsewhere(tmp_path):
    why = _can_mount_read_only()
    if why:
        pytest.skip(why)
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    for d in (home, tmp):
        d.mkdir()
    python, site = _install_wheel(tmp_path)  # gradtensor/kernels a real folder, no caches yet
    assert (site / "gradtensor" / "kernels" / "cpu.py").is_file()
    first = _read_only_run(site, home, tmp, python=python)
    assert first.returncode == 0, first.stderr[-4000:]
    assert first.stdout.split() == ["ok", "0.8427", "(4,", "3)"]
    assert first.stderr.count("cannot be cached beside") == 1, first.stderr  # said once
    cache = tmp / f"gradtensor-numba-cache-{os.getuid()}"
    assert any(cache.rglob("*.nbi")), "nothing was cached in the temporary folder"
    assert not any(site.rglob("*.nbi")) and not any(home.rglob("*"))
    assert first.stderr.count("compiling kernels") == 1, first.stderr  # announced, once
    # A second process finds the kernels it compiled there.
    second = _read_only_run(site, home, tmp, python=python)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "compiling kernels" not in second.stderr, second.stderr


@pytest.mark.slow
def test_kernels_compiled_at_install_time_load_in_a_read_only_install(tmp_path):
    why = _can_mount_read_only()
    if why:
        pytest.skip(why)
    site, home, tmp = tmp_path / "site", tmp_path / "home", tmp_path / "tmp"
    for d in (site, home, tmp):
        d.mkdir()
    shutil.copytree(ROOT / "gradtensor", site / "gradtensor", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    # While the install is writable (as `python -m gradtensor.prepare` would run at install
    # time), what SCRIPT needs is compiled into the package's own __pycache__ folders.
    prepared = _read_only_run(site, home, tmp, read_only=False)
    assert prepared.returncode == 0, prepared.stderr[-4000:]
    assert any(site.rglob("*.nbi")) and not any(tmp.iterdir())
    run = _read_only_run(site, home, tmp)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout.split() == ["ok", "0.8427", "(4,", "3)"]
    assert run.stderr.count("cannot be cached beside") == 1, run.stderr
    assert "compiling kernels" not in run.stderr, run.stderr  # loaded, not compiled


@pytest.mark.slow
def test_prepare_compiles_every_cpu_kernel(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = "import gradtensor.prepare as p; p.main()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"CPU kernels compiled into {tmp_path}" in done.stdout
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=900)  # fmt: skip
    assert again.returncode == 0 and "compiling kernels" not in again.stderr, again.stderr


def test_a_writable_install_keeps_numbas_own_cache_and_says_nothing():
    code = (
        "import warnings; warnings.simplefilter('error'); "
        "from gradtensor.kernels import cpu, optim_cpu; import gradtensor as gt; "
        "gt.erf(gt.ones(1)); "
        "from numba.core import config; print(repr(config.CACHE_DIR))"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip() == "''"  # not redirected: the cache stays beside the package
