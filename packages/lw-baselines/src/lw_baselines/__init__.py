"""lw-baselines."""
