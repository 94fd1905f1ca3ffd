"""Studies bigger than one run: parameter sweeps over a grid and seeds (``sweep``).

Workers run markets and return their runs; only the driver writes the database.
"""
