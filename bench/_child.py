"""Entry point of a group's child process: ``python -m bench._child --group A ...``."""
import sys

from bench.runner import child_main

if __name__ == "__main__":
    sys.exit(child_main())
