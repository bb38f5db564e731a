"""``python -m vmc demo`` trains a small classifier and prints its profile;
``python -m vmc cache info|clear`` manages the compile cache."""
from __future__ import annotations

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vmc")
    sub = parser.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="train a small MLP classifier and print its profile")
    demo.add_argument("--epochs", type=int, default=20)
    demo.add_argument("--batch", type=int, default=32)
    demo.add_argument("--hidden", type=int, default=64)
    demo.add_argument("--no-profile", action="store_true")
    cache = sub.add_parser("cache", help="the compile cache")
    cache.add_argument("action", choices=["info", "clear"])
    args = parser.parse_args(argv)
    if args.cmd == "demo":
        from .demo import run_demo
        run_demo(epochs=args.epochs, batch=args.batch, hidden=args.hidden,
                 profile=not args.no_profile)
    else:
        return _cache(args.action)
    return 0


def _cache(action):
    try:
        from .thunks.cgen.cache import cache_clear, cache_info
    except ImportError as e:
        print(f"the compile cache is not available: {e}", file=sys.stderr)
        return 1
    if action == "info":
        from .thunks.cgen import stock
        info = {**cache_info(), **stock.info()}
        for k, v in info.items():
            print(f"{k}: {v}")
    else:
        from .compile.graph_cache import clear_memory
        cache_clear()
        clear_memory()
        print("compile cache cleared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
