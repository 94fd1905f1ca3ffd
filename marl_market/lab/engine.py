"""Where independent tasks run: a local process pool (the default) or Ray tasks on a cluster.

``run_tasks(fn, calls)`` runs ``fn(*args)`` for every ``args`` in ``calls`` and yields
``(position, result)`` in the order they finish, the result being the task's exception when it
raised (the caller decides whether one failure stops everything: a comparison re-raises, a
sweep reports it and goes on). Tasks must depend on their arguments only (seeded markets), so
where they run changes nothing in what they return. Ctrl-C drops the tasks not yet finished.
The multi-seed compare (``experiments.run_scenarios``) and the sweeps (``scale.sweep``) run
here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

BACKENDS = ("local", "ray")


def run_tasks(
    fn: Callable,
    calls: Sequence[tuple],
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
) -> Iterator[tuple[int, object]]:
    """``(position in calls, fn(*args) or its exception)`` per call, as they finish.

    ``local``: ``workers`` processes (default: every core; 1, or a single call, runs in this
    process). ``ray``: Ray tasks on the cluster at ``address`` (None: the instance this process
    has joined, else a local one started here and stopped afterwards).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if not calls:
        return
    if backend == "ray":
        yield from _on_ray(fn, calls, address)
        return
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(calls) == 1:
        for position, args in enumerate(calls):
            try:
                yield position, fn(*args)
            except Exception as error:  # handed to the caller with its position
                yield position, error
        return
    with ProcessPoolExecutor(min(workers, len(calls))) as pool:
        futures = {pool.submit(fn, *args): position for position, args in enumerate(calls)}
        try:
            for future in as_completed(futures):
                error = future.exception()
                yield futures[future], error if error is not None else future.result()
        except BaseException:  # Ctrl-C (or the caller failing): drop what has not started
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _on_ray(fn: Callable, calls: Sequence[tuple], address: str | None) -> Iterator[tuple]:
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if address is None:  # a private local instance: no token to write or share
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(fn)
        pending = {remote.remote(*args): position for position, args in enumerate(calls)}
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                position = pending.pop(ref)
                try:
                    yield position, ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    # The task's own exception, as the local backend hands it over.
                    cause = getattr(error, "cause", None)
                    yield position, cause if isinstance(cause, BaseException) else error
        except BaseException:  # Ctrl-C: drop what has not finished
            for ref in pending:
                ray.cancel(ref)
            raise
    finally:
        if started_here:
            ray.shutdown()


def import_ray():
    """The ``ray`` module, or one clear ``ValueError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "the ray backend needs Ray: pip install '.[ray]' (or pip install ray==2.60.0)"
        ) from None
    return ray
