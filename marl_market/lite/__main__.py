"""``python -m marl_market.lite [--out dashboard.html]``: rebuild the browser dashboard."""

from __future__ import annotations

import argparse
from pathlib import Path

from marl_market.lite.build import DEFAULT_OUT, build_dashboard


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard and say where."""
    parser = argparse.ArgumentParser(
        prog="python -m marl_market.lite",
        description="Build dashboard.html: the market simulation as a static stlite page.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output file (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    out = build_dashboard(args.out)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
