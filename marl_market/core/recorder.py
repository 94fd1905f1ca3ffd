"""Chunked columns: a run's history in compact numpy chunks, cheap to append and to fork.

Rows are appended as tuples to a short Python list (the fastest append there is) and every
``CHUNK_ROWS`` rows become one numpy array, so memory is 8 bytes a value whatever the run's
length, not a Python object per value. Finished chunks are never changed, so a copy (a forked
market) shares them and copies only the pending rows: O(chunk), not O(history).
"""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 4096


class Columns:
    """A table of ``width`` numeric columns of one ``dtype``, appended a row at a time.

    Append with ``columns.rows.append(row)`` (the hot path) and call ``flush_if_full()`` now and
    then (the market does once a step).
    """

    def __init__(self, width: int, dtype: type, keep: bool = True):
        self.width = width
        self.dtype = dtype
        # keep=False: rows are dropped at every flush, so memory stays flat however long the
        # run (a market played for what it does, e.g. a learning environment, not its record).
        self.keep = keep
        self.rows: list[tuple] = []
        self.chunks: list[np.ndarray] = []
        self.n_chunked = 0

    def __len__(self) -> int:
        return self.n_chunked + len(self.rows)

    def flush_if_full(self) -> None:
        if len(self.rows) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.keep:
            self.rows = []
            return
        if self.rows:
            chunk = np.array(self.rows, dtype=self.dtype).reshape(-1, self.width)
            self.chunks.append(chunk)
            self.n_chunked += len(chunk)
            self.rows = []

    def columns(self, dtypes: list, start: int = 0) -> list[np.ndarray]:
        """Rows ``start`` on as one contiguous array per column, cast to ``dtypes``.

        Each column is filled chunk by chunk, so a long run's record is built with one copy of
        the data (no intermediate table of every row).
        """
        start = max(0, min(start, len(self)))
        n = len(self) - start
        out = [np.empty(n, dtype=dtype) for dtype in dtypes]
        pending = self.rows[max(0, start - self.n_chunked) :]
        parts, first = [], 0
        for chunk in self.chunks:
            if first + len(chunk) > start:
                parts.append(chunk[max(0, start - first) :])
            first += len(chunk)
        if pending:
            parts.append(np.array(pending, dtype=self.dtype).reshape(-1, self.width))
        at = 0
        for part in parts:
            for i, column in enumerate(out):
                column[at : at + len(part)] = part[:, i]
            at += len(part)
        return out

    def __deepcopy__(self, memo: dict) -> Columns:
        new = Columns(self.width, self.dtype, self.keep)
        new.rows = list(self.rows)  # rows are tuples of numbers: immutable
        new.chunks = list(self.chunks)  # shared: a chunk is never written after it is made
        new.n_chunked = self.n_chunked
        memo[id(self)] = new
        return new
