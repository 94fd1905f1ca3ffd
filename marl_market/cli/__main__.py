"""``python -m marl_market.cli`` is ``marlsim``."""

from marl_market.cli import main

main()
