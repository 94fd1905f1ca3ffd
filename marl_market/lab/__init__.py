"""Services between the front doors (app, CLI) and the core: running and storing simulations
and scenario comparisons (``experiments``), opening, replaying and verifying stored runs
(``workbench``, ``verify``), book snapshots, GARCH and the S&P 500 reference (``analysis``) and
the HTML report."""
