"""Driver scripts that run one peer simulator's workload in the peer's own interpreter.

Each driver is our code, run as a script (``python DRIVER.py ...``) by ``marl_market.bench.peers``
with the peer's interpreter; it imports the peer from the checkout path it is given and prints
one JSON object on stdout. Drivers import nothing from ``marl_market`` (the peer's environment
need not have it, and ABIDES's has numpy < 2), only the standard library and the peer.
"""
