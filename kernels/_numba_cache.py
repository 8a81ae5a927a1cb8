"""Somewhere for Numba's compile cache, on any install, and a word when compiling starts.

Functions compiled with cache=True make Numba raise when it has nowhere to write their cache: no
writable __pycache__ beside the source (a read-only install) and no writable user cache folder
(a read-only home, as for a service account). Then the cache goes to a private temporary folder.
Kernels compiled into the package's own folders at install time (python -m gradtensor.prepare)
are copied there first. A kernel's first compilation takes seconds; the first one in a process is
announced on stderr, so that a first training step does not look hung.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings

_checked: set[str] = set()
_redirected: list[str] = []  # the temporary folder, once chosen
_listener: list[object] = []  # the one registered with Numba, once registered
_announced = False


def _announce_compiles() -> None:
    """Print one line on stderr when Numba first compiles (not loads) one of gradtensor's kernels
    in this process."""
    from numba.core import event

    class Announce(event.Listener):
        def on_start(self, ev: event.Event) -> None:
            global _announced
            disp = ev.data.get("dispatcher")
            fn = getattr(disp, "py_func", None)
            if _announced or not getattr(fn, "__module__", "").startswith(_OURS):
                return
            if type(getattr(disp, "_cache", None)).__name__ == "NullCache":
                return  # not cached on its own: inlined into a cached caller
            _announced = True
            print(
                "gradtensor: compiling kernels for their first use (seconds, once: later runs "
                "load them from Numba's cache)",
                file=sys.stderr,
                flush=True,
            )

        def on_end(self, ev: event.Event) -> None:
            pass

    _listener.append(Announce())
    event.register("numba:compile", _listener[0])


_OURS = ("gradtensor", "kernels")


def _seed(py_file: str, caching: object) -> None:
    """Copy the kernels compiled beside `py_file` at install time (python -m gradtensor.prepare)
    into the folder Numba now uses for it, where they load instead of compiling again: Numba
    itself ignores a cache folder it cannot write to."""
    src = os.path.join(os.path.dirname(py_file), "__pycache__")
    stem = os.path.splitext(os.path.basename(py_file))[0] + "."
    try:
        names = [n for n in os.listdir(src) if n.startswith(stem) and n.endswith((".nbi", ".nbc"))]
    except OSError:
        return
    locator = getattr(caching, "UserProvidedCacheLocator", None) or getattr(
        caching, "_UserProvidedCacheLocator", None
    )
    if not names or locator is None:
        return
    dst = locator(_seed, py_file).get_cache_path()
    os.makedirs(dst, exist_ok=True)
    for name in names:
        if not os.path.exists(os.path.join(dst, name)):
            part = os.path.join(dst, f".{name}.{os.getpid()}")
            shutil.copyfile(os.path.join(src, name), part)
            os.replace(part, os.path.join(dst, name))  # whole, even with processes racing


def ensure_cache(py_file: str) -> None:
    """Call before a module's cache=True functions are defined: when no place Numba looks in is
    writable for `py_file`, point Numba at a temporary folder of this user's, and say so once."""
    from numba.core import caching, config

    if not _listener:
        _announce_compiles()
    if py_file in _checked:
        return
    _checked.add(py_file)
    if config.CACHE_DIR:  # NUMBA_CACHE_DIR, or the folder an earlier call chose
        if _redirected and config.CACHE_DIR == _redirected[0]:
            _seed(py_file, caching)
        return
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    locators = getattr(impl, "_locator_classes", None)
    if not locators or any(cls.from_function(ensure_cache, py_file) for cls in locators):
        return  # a writable place exists (or this Numba keeps its locators elsewhere: let it be)
    user = getattr(os, "getuid", lambda: "user")()
    path = os.path.join(tempfile.gettempdir(), f"gradtensor-numba-cache-{user}")
    config.CACHE_DIR = path  # read as each cache=True function is defined
    _redirected.append(path)
    _seed(py_file, caching)
    warnings.warn(
        f"gradtensor: compiled kernels cannot be cached beside {os.path.dirname(py_file)} or in "
        f"the home folder (neither is writable); they are cached in {path}. Set NUMBA_CACHE_DIR "
        "to choose the folder.",
        RuntimeWarning,
        stacklevel=2,
    )
