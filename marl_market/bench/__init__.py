"""The workloads ``marlsim bench`` runs, and the in-repo baseline it measures our book against.

- ``stream``: the seeded order stream every book replays;
- ``baseline``: the plain dict-of-deques + heaps book (DESIGN.md §5);
- ``book``: our ``submit(Order)`` / ``submit_fast`` and the baseline on one stream, fills checked;
- ``workloads``: default market, rmsc04-sized crowd, zero-intelligence crowd, compare, memory;
- ``peers`` and ``drivers/``: ABIDES and PyMarketSim run from a user's checkout, in their own
  processes (nothing of theirs is copied here, and no peer figure is stored);
- ``suite``: one run of everything, as a dict; ``table``: its human-readable table.

Two scripts that are not part of ``marlsim bench`` live here too: ``app_timing`` (the
Streamlit pages' latency, through AppTest) and ``model_targets`` (the stylised-fact targets
over many seeds); run them with ``python -m marl_market.bench.<name>``.
"""
