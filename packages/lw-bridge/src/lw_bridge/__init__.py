"""lw-bridge."""
