"""`python -m lw_bridge ...` is `lw-train ...` (plans run it with the registry's own interpreter)."""

from lw_bridge.cli import train_main

if __name__ == "__main__":
    raise SystemExit(train_main())
