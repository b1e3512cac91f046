"""Compare runs: a leaderboard of every run under a folder (table.py), configurations over seeds (groups.py), which
parameters matter (importance.py), a plot (plot.py), and the search-level TensorBoard run (summary.py).

Kept free of torch except for writing the TensorBoard run, and of Optuna, scipy and matplotlib until they are used.
"""
