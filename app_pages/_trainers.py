"""Training runs as subprocesses of the app server: start them, stop them, find them again.

Why a subprocess and not a thread: a training run takes minutes to hours of CPU, imports torch
and steps its markets in worker processes of its own; inside the Streamlit server it would
compete with every page for the interpreter and die with it. ``marlsim train`` in its own
process stores every iteration in the database as it goes (``rl.runs``), which is all the Train
page needs to follow it, and Ctrl-C (SIGINT) leaves it ``stopped`` and resumable.

The processes live in one registry per server (``st.cache_resource``), keyed by database and
run ID, so a reload or a second tab finds a running training, and no run is trained by two
processes at once. They stay in the server's process group: stopping the server with Ctrl-C
stops its trainings the same way the Stop button does, resumable.

No torch here (nor on any page but Train): this module only starts commands.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent  # the checkout: ``-m marl_market.cli`` from here
LOG_FOLDER = "train_logs"


class AlreadyTraining(RuntimeError):
    """A process of this server is already training that run."""


@dataclass
class Trainer:
    """One ``marlsim train`` process started by this server."""

    db: str
    run_id: str
    process: subprocess.Popen
    log_path: Path
    command: list[str]
    started: float = field(default_factory=time.time)
    stop_requested: bool = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None  # poll also reaps a finished child

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


class TrainerRegistry:
    """The server's training processes by (database, run ID); safe across sessions' threads.

    Keyed by database too: the same settings give the same run ID in every database, and
    training it in one says nothing about another.
    """

    def __init__(self) -> None:
        self._trainers: dict[tuple[str, str], Trainer] = {}
        self._lock = threading.Lock()

    def get(self, db: str, run_id: str) -> Trainer | None:
        """The latest process started for the run (alive or finished), or None."""
        with self._lock:
            return self._trainers.get((db, run_id))

    def running(self, db: str) -> list[str]:
        """Run IDs of ``db`` a process of this server is training now, newest first."""
        with self._lock:
            trainers = [t for (path, _), t in self._trainers.items() if path == db]
        return [t.run_id for t in sorted(trainers, key=lambda t: -t.started) if t.alive]

    def start(self, db: str, run_id: str, options: list[str]) -> Trainer:
        """Start ``marlsim train OPTIONS --db DB --json`` for ``run_id``, its output appended to
        ``log_path(db, run_id)``. ``AlreadyTraining`` if a process here is training it."""
        with self._lock:  # two tabs clicking at once must not start two trainers
            current = self._trainers.get((db, run_id))
            if current is not None and current.alive:
                raise AlreadyTraining(f"run {run_id} is already being trained by this app")
            command = [sys.executable, "-m", "marl_market.cli", "train", *options]
            command += ["--db", db, "--json"]
            path = log_path(db, run_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as log:
                stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                log.write(f"=== {stamp}: {shlex.join(command)}\n")
                log.flush()
                process = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Unbuffered: the log shows progress as it happens, and a crash's last words.
                    env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"},
                )
            trainer = Trainer(db, run_id, process, path, command)
            self._trainers[(db, run_id)] = trainer
            return trainer

    def stop(self, db: str, run_id: str) -> bool:
        """Send SIGINT (Ctrl-C) to the run's process: ``marlsim train`` marks the run
        ``stopped``, keeps its checkpoints and exits 130. False if nothing here is training it."""
        trainer = self.get(db, run_id)
        if trainer is None or not trainer.alive:
            return False
        trainer.process.send_signal(signal.SIGINT)
        trainer.stop_requested = True
        return True


@st.cache_resource(show_spinner=False)
def registry() -> TrainerRegistry:
    """The one registry of this server (shared by every session and tab)."""
    return TrainerRegistry()


def log_path(db: str, run_id: str) -> Path:
    """Where a run's ``marlsim train`` output goes: ``<db folder>/train_logs/<run_id>.log``."""
    return Path(db).parent / LOG_FOLDER / f"{run_id}.log"


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file ('' if there is none)."""
    try:
        with path.open(errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return ""
