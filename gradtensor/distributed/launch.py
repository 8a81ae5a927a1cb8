"""Start a script on N processes with the installed MPI launcher (a thin wrapper over mpiexec).

    python -m gradtensor.distributed.launch -n 4 train.py --epochs 10
    python -m gradtensor.distributed.launch -n 8 --hostfile hosts train.py   # across machines

Everything but the script and its arguments goes to mpiexec as it is (`-n`, `--hostfile`,
`-ppn`, ...). The mpiexec next to this Python (the one the `mpich` wheel installs with
`pip install gradtensor[mpi]`) is preferred to one on PATH, so that the launcher matches the MPI
library mpi4py loads.
"""

from __future__ import annotations

import os
import shutil
import sys


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (a virtual environment's bin/), else the first on PATH."""
    for name in ("mpiexec", "mpirun"):
        here = os.path.join(os.path.dirname(sys.executable), name)
        if os.path.isfile(here) and os.access(here, os.X_OK):
            return here
    return shutil.which("mpiexec") or shutil.which("mpirun")


def command(argv: list[str]) -> list[str]:
    """mpiexec's command line for `launch argv`: its options, then this Python and the script."""
    script_at = next((i for i, a in enumerate(argv) if a.endswith(".py")), None)
    if script_at is None or not argv:
        raise SystemExit(
            "usage: python -m gradtensor.distributed.launch -n N [mpiexec options] script.py "
            "[script arguments]"
        )
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise SystemExit(
            "gradtensor.distributed.launch: no mpiexec found beside this Python or on PATH; "
            "install one with `pip install gradtensor[mpi]`"
        )
    return [mpiexec, *argv[:script_at], sys.executable, *argv[script_at:]]


def main(argv: list[str] | None = None) -> None:
    cmd = command(sys.argv[1:] if argv is None else argv)
    os.execv(cmd[0], cmd)  # mpiexec's exit status becomes ours


if __name__ == "__main__":
    main()
