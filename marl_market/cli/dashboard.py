"""``marlsim dashboard`` (the lab in the browser) and ``marlsim report`` (a run as HTML)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from marl_market.cli.common import DbOption, JsonOption, emit_json, fail, open_store
from marl_market.store import DB_ENV, StoreError, check_writable, default_db_path

app = typer.Typer()


def _app_script() -> Path:
    """``app.py``, which lives at the repository root next to the package (not inside it)."""
    import marl_market

    script = Path(marl_market.__file__).resolve().parents[1] / "app.py"
    if not script.is_file():
        fail(
            f"the app is not installed: {script} is missing (marlsim dashboard needs a source "
            "checkout installed with `pip install -e .`; or run `streamlit run app.py` there)"
        )
    return script


@app.command()
def dashboard(
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "localhost",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    headless: Annotated[
        bool, typer.Option("--headless", help="Do not open a browser window.")
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Start the lab in the browser (the Streamlit app) on HOST:PORT."""
    if not 1 <= port <= 65_535:
        fail(f"--port must be between 1 and 65535, got {port}")
    if not host.strip():
        fail("--host must not be empty")
    script = _app_script()
    try:
        path = check_writable(db if db is not None else default_db_path())
    except StoreError as error:
        fail(str(error))
    env = {**os.environ, DB_ENV: str(path)}  # the app opens the same database as this command
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.address", host, "--server.port", str(port),
        # As .streamlit/config.toml says: the default watcher spins a core with a tab open.
        "--server.fileWatcherType", "poll",
    ]  # fmt: skip
    if headless:
        command += ["--server.headless", "true"]
    url = f"http://{host}:{port}"
    if json_out:
        emit_json({"url": url, "app": str(script), "db": str(path)})
    else:
        print(f"marl-market lab on {url} (database {path}); Ctrl+C stops it", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    if json_out:  # stdout holds exactly one JSON object: Streamlit's own output goes to stderr
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Become the server (no child process): Ctrl+C and kill reach Streamlit itself, and nothing
    # is left running behind a dead parent.
    os.execve(sys.executable, command, env)


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="The run's ID.")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.", show_default=False)],
    book: Annotated[
        bool, typer.Option(help="Replay the run to include its order-book heatmap.")
    ] = True,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write a self-contained HTML report of a stored run (works offline)."""
    from marl_market.lab.report import build_report

    store = open_store(db, for_writing=False)
    if store.get_run(run_id) is None:
        fail(f"no run {run_id!r} in {store.path}")
    target = out.expanduser().absolute()
    if target.is_dir():
        fail(f"--out {target} is a directory; give a file name such as report.html")
    if not target.parent.is_dir():
        fail(f"cannot write {target}: directory {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK) or (
        target.exists() and not os.access(target, os.W_OK)
    ):
        fail(f"cannot write {target}: permission denied")
    document = build_report(store, run_id, book=book)
    # Written next to the target and renamed over it: a failure leaves no half-written report.
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(document)
            os.chmod(tmp, _user_file_mode())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as error:
        fail(f"cannot write {target}: {error.strerror or error}")
    size = target.stat().st_size
    if json_out:
        emit_json({"run_id": run_id, "out": str(target), "bytes": size})
    else:
        print(f"wrote {target} ({size / 1e6:.1f} MB)", file=sys.stderr)


def _user_file_mode() -> int:
    """The mode a plain ``open()`` would give a new file here (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
