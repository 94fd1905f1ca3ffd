"""``marlsim dashboard``: it finds the app, passes the database on, serves it, checks options."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import typer

import marl_market
from marl_market.cli import dashboard as dashboard_command

MARLSIM = [sys.executable, "-m", "marl_market.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--port", "0"], "--port must be between"), (["--host", " "], "--host must not be empty")],
)
def test_bad_options_exit_2_with_one_line(tmp_path, args, message):
    done = subprocess.run(
        [*MARLSIM, "dashboard", *args, "--db", str(tmp_path / "x.duckdb")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.strip().count("\n") == 0
    assert not (tmp_path / "x.duckdb").exists()


def test_a_missing_app_is_a_clear_error(tmp_path, monkeypatch, capsys):
    # As in a non-editable install: the package without the repository around it.
    monkeypatch.setattr(marl_market, "__file__", str(tmp_path / "site" / "marl_market" / "x.py"))
    with pytest.raises(typer.Exit) as exit_info:
        dashboard_command._app_script()
    assert exit_info.value.exit_code == 2
    assert "app.py is missing" in capsys.readouterr().err


def test_dashboard_serves_the_app_with_the_given_database(tmp_path):
    port = free_port()
    db = tmp_path / "lab.duckdb"
    process = subprocess.Popen(
        [*MARLSIM, "dashboard", "--headless", "--host", "127.0.0.1", "--port", str(port)]
        + ["--db", str(db), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        payload = json.loads(process.stdout.readline())
        assert payload["url"] == f"http://127.0.0.1:{port}"
        assert Path(payload["app"]) == Path(marl_market.__file__).resolve().parents[1] / "app.py"
        assert payload["db"] == str(db)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{payload['url']}/_stcore/health", timeout=2) as r:
                    assert r.read() == b"ok"
                    break
            except OSError:
                assert process.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not come up in 60 s"
                time.sleep(0.3)
        # The server is the marlsim process itself (exec), with the database in its environment.
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
        assert f"MARL_MARKET_DB={db}".encode() in environ
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # Stopping marlsim stopped the server: no orphan keeps the port.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
