"""gt.save interrupted at any point (a killed process, a failing disk, Ctrl-C) never leaves a file
that loads wrong: the path holds the old checkpoint or the new one, whole.

Saves write `.<name>.<16 hex digits>.gtsave-tmp` next to the destination and rename it over the
destination; a process killed mid-save leaves that temporary behind, which nothing mistakes for a
checkpoint.
"""

import errno
import os
import random
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gradtensor as gt
from gradtensor import serialization

TEMP = re.compile(r"^\.ckpt\.npz\.[0-9a-f]{16}\.gtsave-tmp$")


def _payload(tag, n=1000):
    return {"tag": tag, "w": np.full(n, tag, dtype=np.float64), "b": gt.full((10, 10), tag)}


def _tag_of_whole(path):
    obj = gt.load(path)
    tag = obj["tag"]
    assert np.all(obj["w"] == tag) and np.all(obj["b"].data == tag)
    return tag


# -- a process killed mid-save ------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import gradtensor as gt

    path = sys.argv[1]
    payloads = [
        {"tag": t, "w": np.full(400_000, t, dtype=np.float64), "b": gt.full((10, 10), t)}
        for t in (1, 2)
    ]
    print("ready", flush=True)
    i = 0
    while True:  # back to back, so a kill almost always lands inside a save
        gt.save(payloads[i % 2], path)
        i += 1
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is a POSIX signal")
def test_killed_saves_leave_the_old_or_the_new_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    gt.save(_payload(0), path)
    rng = random.Random(0)
    leftovers = set()
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout.readline() == "ready\n"
            try:
                child.wait(timeout=rng.uniform(0.0, 0.08))
            except subprocess.TimeoutExpired:
                pass
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL  # it was still saving, not crashed
        assert _tag_of_whole(path) in (0, 1, 2)
        others = {p.name for p in tmp_path.iterdir()} - {"ckpt.npz"}
        assert all(TEMP.match(name) for name in others), others
        leftovers |= others
    # Kills interrupted saves (their temporaries remain), and none of them looks like a checkpoint.
    assert leftovers
    assert [p.name for p in tmp_path.glob("*.npz")] == ["ckpt.npz"]


# -- failures inside the process --------------------------------------------------------------


def _fail(monkeypatch, point, exc):
    """Make one step of a save raise `exc`: writing (after 0 or some bytes), fsync, or rename."""
    if point.startswith("write"):
        real_savez = np.savez
        written = {"write-start": 0, "write-middle": 4000}[point]

        def savez(file, *args, **kwargs):
            real_savez(file, *args, **kwargs)
            file.seek(written)
            file.truncate()
            raise exc

        monkeypatch.setattr(np, "savez", savez)
    else:

        def broken(*args, **kwargs):
            raise exc

        monkeypatch.setattr(os, point, broken)


POINTS = ["write-start", "write-middle", "fsync", "replace"]
ERRORS = [OSError(errno.EIO, "Input/output error"), KeyboardInterrupt()]


@pytest.mark.parametrize("exc", ERRORS, ids=["OSError", "KeyboardInterrupt"])
@pytest.mark.parametrize("point", POINTS)
def test_failed_save_keeps_the_old_checkpoint_and_no_temporary(tmp_path, monkeypatch, point, exc):
    path = tmp_path / "ckpt.npz"
    gt.save(_payload(1), path)
    with monkeypatch.context() as m:
        _fail(m, point, exc)
        with pytest.raises(type(exc)):
            gt.save(_payload(2, n=5000), path)
    assert _tag_of_whole(path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]
    gt.save(_payload(3), path)  # and the next save works
    assert _tag_of_whole(path) == 3


@pytest.mark.parametrize("point", POINTS)
def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch, point):
    with monkeypatch.context() as m:
        _fail(m, point, OSError(errno.EIO, "Input/output error"))
        with pytest.raises(OSError):
            gt.save(_payload(1, n=5000), tmp_path / "ckpt.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_syncs_the_data_before_renaming(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append("replace") or real_replace(a, b))
    gt.save(_payload(1), tmp_path / "ckpt.npz")
    expected = ["fsync", "replace", "fsync"] if os.name == "posix" else ["fsync", "replace"]
    assert calls == expected  # the file's data, the rename, then the folder


def test_stale_temporaries_are_not_checkpoints(tmp_path):
    path = tmp_path / "ckpt.npz"
    gt.save(_payload(1), path)
    stale = tmp_path / ".ckpt.npz.0123456789abcdef.gtsave-tmp"  # as a killed save leaves it
    stale.write_bytes(path.read_bytes()[:300])
    gt.save(_payload(2), path)
    assert _tag_of_whole(path) == 2
    # Another process may still be writing it: a save leaves other temporaries alone.
    assert stale.exists() and len(stale.read_bytes()) == 300
    assert [p.name for p in tmp_path.glob("*.npz")] == ["ckpt.npz"]
    with pytest.raises(ValueError, match="gtsave-tmp"):
        gt.load(stale)


def test_temporary_name_is_documented_and_fits(tmp_path, monkeypatch):
    names = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: names.append(a) or real_replace(a, b))
    long_name = "x" * 240 + ".npz"  # a temporary must stay under the 255-byte name limit
    gt.save(_payload(1), tmp_path / long_name)
    gt.save(_payload(1), tmp_path / "ckpt.npz")
    assert TEMP.match(os.path.basename(names[1]))
    assert os.path.basename(names[0]).endswith(serialization._TMP_SUFFIX)
    assert len(os.path.basename(names[0])) < 255
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([long_name, "ckpt.npz"])
