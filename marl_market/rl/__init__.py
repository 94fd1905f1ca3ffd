"""The learning half: the PettingZoo environment (``env``), and later the networks and PPO.

The only package that imports torch and torch_geometric; the CLI and the app import it lazily,
so the other commands and pages never pay for torch's import.
"""
