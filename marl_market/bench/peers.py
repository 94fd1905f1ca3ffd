"""Run a peer simulator's workload in its own process, from a checkout the user points at.

Nothing of a peer is copied into this project: ``drivers/`` holds our small driver scripts,
which the peer's interpreter runs with the checkout's path; each prints one JSON object. A
peer's figure exists only if it was run here, in this bench run: there are no stored peer
figures to fall back on.

``check_*`` validate a checkout and its interpreter before any workload runs (a bad option is
a ``PeerOptionError``: one line, exit code 2); a workload that fails later is a
``PeerRunError``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from marl_market.bench.stream import Op

DRIVERS = Path(__file__).resolve().parent / "drivers"
DRIVER_FOR_ABIDES = DRIVERS / "abides_driver.py"
DRIVER_FOR_PYMARKETSIM = DRIVERS / "pymarketsim_driver.py"
CHECK_TIMEOUT_S = 300  # importing torch cold can take a while on a busy machine
RUN_TIMEOUT_S = 1_800


class PeerOptionError(ValueError):
    """A peer path or interpreter that cannot work (reported before anything runs)."""


class PeerRunError(RuntimeError):
    """A peer workload that failed while running."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _run_driver(command: list[str], timeout: float, what: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="marlsim-peer-") as cwd:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise PeerRunError(f"{what} did not finish within {timeout:.0f} s") from None
        except OSError as error:
            raise PeerRunError(f"{what} could not start: {error}") from None
    if done.returncode != 0:
        raise PeerRunError(f"{what} failed: {_last_line(done.stderr)}")
    try:
        return json.loads(_last_line(done.stdout))
    except json.JSONDecodeError:
        raise PeerRunError(f"{what} printed no JSON result") from None


def check_interpreter(python: str, option: str) -> str:
    """``python`` as an executable path, or a ``PeerOptionError`` naming ``option``."""
    path = Path(python)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise PeerOptionError(f"{option} {python}: not an executable file")
    return str(path)


def check_abides(root: Path, python: str) -> dict:
    """Check that ``root`` is an ABIDES checkout that imports under ``python``; its versions."""
    if not root.is_dir():
        raise PeerOptionError(f"--abides {root}: no such directory")
    for package in ("abides-core/abides_core", "abides-markets/abides_markets"):
        if not (root / package / "__init__.py").is_file():
            raise PeerOptionError(f"--abides {root}: not an ABIDES checkout (no {package}/ in it)")
    command = [python, str(DRIVER_FOR_ABIDES), "check", "--abides", str(root)]
    try:
        return _run_driver(command, CHECK_TIMEOUT_S, "ABIDES")
    except PeerRunError as error:
        raise PeerOptionError(
            f"ABIDES at {root} does not import under {python} ({error}); it needs numpy<2 and "
            "pandas<2: give an interpreter that has them with --abides-python"
        ) from None


def check_pymarketsim(root: Path, python: str) -> dict:
    """Check that ``root`` is a PyMarketSim checkout that imports under ``python``."""
    if not root.is_dir():
        raise PeerOptionError(f"--pymarketsim {root}: no such directory")
    if not (root / "marketsim" / "__init__.py").is_file():
        raise PeerOptionError(f"--pymarketsim {root}: not a PyMarketSim checkout (no marketsim/)")
    command = [python, str(DRIVER_FOR_PYMARKETSIM), "check", "--pymarketsim", str(root)]
    try:
        return _run_driver(command, CHECK_TIMEOUT_S, "PyMarketSim")
    except PeerRunError as error:
        raise PeerOptionError(
            f"PyMarketSim at {root} does not import under {python} ({error}); it needs torch "
            "and fastcubicspline: pip install -e '.[peers]' && pip install --no-deps "
            "fastcubicspline"
        ) from None


def abides_book(root: Path, python: str, ops: list[Op], repeats: int = 1) -> dict:
    """ABIDES's ``OrderBook`` on ``ops`` (the stream our engines replayed), best of ``repeats``."""
    with tempfile.TemporaryDirectory(prefix="marlsim-stream-") as tmp:
        stream = Path(tmp) / "stream.json"
        stream.write_text(json.dumps(ops))
        command = [python, str(DRIVER_FOR_ABIDES), "book", "--abides", str(root)]
        command += ["--stream", str(stream), "--repeats", str(repeats)]
        return _run_driver(command, RUN_TIMEOUT_S, "ABIDES order book")


def abides_rmsc04(root: Path, python: str, end_time: str = "16:00:00", seed: int = 0) -> dict:
    """One rmsc04 day (09:30 to ``end_time``) as ABIDES ships it; book events per second."""
    command = [python, str(DRIVER_FOR_ABIDES), "rmsc04", "--abides", str(root)]
    command += ["--end-time", end_time, "--seed", str(seed)]
    return _run_driver(command, RUN_TIMEOUT_S, "ABIDES rmsc04")


def pymarketsim_zi(
    root: Path, python: str, agents: int = 500, steps: int = 50_000, seed: int = 0
) -> dict:
    """PyMarketSim's sampled-arrival zero-intelligence crowd; book events per second."""
    command = [python, str(DRIVER_FOR_PYMARKETSIM), "zi", "--pymarketsim", str(root)]
    command += ["--agents", str(agents), "--steps", str(steps), "--seed", str(seed)]
    return _run_driver(command, RUN_TIMEOUT_S, "PyMarketSim zero-intelligence crowd")
