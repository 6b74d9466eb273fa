"""lw-tasks."""
