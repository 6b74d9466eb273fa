"""lw-bench."""
