"""The rewrite pipeline.

``optimize(fgraph, mode, timings)`` runs the passes of ``mode`` ("fast_run",
"fast_compile", "None", or a ``Mode``) on a FunctionGraph in place. Rewrites
are plain functions registered with ``node_rewriter`` in named sets; template
rewrites are data (``register_patterns``).
"""
from .rewriting import REGISTRY, node_rewriter
from .patterns import register_patterns
from .driver import RewriteError
from .pipeline import MODES, PASSES, Mode, get_mode, optimize

__all__ = ["optimize", "Mode", "MODES", "PASSES", "get_mode", "node_rewriter",
           "register_patterns", "REGISTRY", "RewriteError"]
