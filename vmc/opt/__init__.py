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
from .blas import Gemm, Gemv, Ger
from .fusion import FusedElemwise
from .nnet import CrossentropySoftmaxArgmax, CrossentropySoftmaxDx, crossentropy_softmax
from . import thunks  # noqa: F401  (registers the thunks of the ops above)

__all__ = ["optimize", "Mode", "MODES", "PASSES", "get_mode", "node_rewriter",
           "register_patterns", "REGISTRY", "RewriteError", "Gemm", "Gemv", "Ger",
           "FusedElemwise", "CrossentropySoftmaxArgmax", "CrossentropySoftmaxDx",
           "crossentropy_softmax"]
