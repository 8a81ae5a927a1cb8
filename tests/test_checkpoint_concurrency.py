"""gt.save from many threads to one path while other threads gt.load it: every save succeeds,
every load sees one whole checkpoint, and no temporary file is left behind."""

import threading

import numpy as np

import gradtensor as gt

WRITERS, SAVES, READERS = 8, 30, 3


def _payload(writer, seq):
    """A checkpoint whose every part says who wrote it, so a mix of two saves shows."""
    tag = writer * 1000 + seq
    return {
        "tag": tag,
        "w": gt.full((64, 64), float(tag)),
        "b": np.full(500, tag, dtype=np.int64),
        "nested": [{"tag": tag}, (float(tag), gt.tensor([tag] * 3))],
    }


def _check_whole(obj):
    tag = obj["tag"]
    assert obj["nested"][0]["tag"] == tag and obj["nested"][1][0] == float(tag)
    assert np.all(obj["w"].data == tag) and obj["w"].shape == (64, 64)
    assert np.all(obj["b"] == tag) and obj["b"].shape == (500,)
    assert obj["nested"][1][1].tolist() == [tag] * 3
    return tag


def test_concurrent_saves_and_loads_of_one_path(tmp_path):
    path = tmp_path / "ckpt.npz"
    gt.save(_payload(99, 0), path)
    written = {99_000} | {w * 1000 + s for w in range(WRITERS) for s in range(SAVES)}
    errors, seen = [], []
    start = threading.Barrier(WRITERS + READERS)
    writers_done = threading.Event()

    def write(w):
        start.wait()
        for s in range(SAVES):
            try:
                gt.save(_payload(w, s), path)
            except Exception as exc:
                errors.append(f"save {w}/{s}: {type(exc).__name__}: {exc}")

    def read():
        start.wait()
        while not writers_done.is_set():
            try:
                seen.append(_check_whole(gt.load(path)))
            except Exception as exc:
                errors.append(f"load: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join()
    writers_done.set()
    for t in readers:
        t.join()

    assert errors == []
    assert seen and set(seen) <= written
    # The file left is one writer's last save, whole.
    assert _check_whole(gt.load(path)) in {w * 1000 + SAVES - 1 for w in range(WRITERS)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]
