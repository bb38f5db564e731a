"""From graphs to callables: ``function`` and ``Function``, their specs, the
optimized-graph cache, the scheduler, the reference VM and profiling.

The names below are what other rooms (scan, user libraries) may use; the
modules' other names are private to this package. ``vmc.function`` is the
compiler's entry point; it is not re-exported here, where it would hide the
module ``vmc.compile.function``.

Theano programs also reach ``theano.compile.SharedVariable`` here.
"""
from vmc.graph.basic import SharedVariable
from .errors import enrich
from .function import Function, FunctionSpec, place_on_device, prepare, schedule
from .graph_cache import optimized_graph
from .io import In, Out, as_update_value, normalize_inputs, normalize_outputs
from .profiling import ProfileStats
from .timeline import trace_length
from .pyvm import ProfilingPyVM, PyVM
from .debugmode import DebugMode
from .monitormode import MonitorMode
from .nanguardmode import NanGuardMode

__all__ = ["Function", "FunctionSpec", "prepare", "schedule", "optimized_graph",
           "place_on_device",
           "In", "Out", "as_update_value", "normalize_inputs", "normalize_outputs",
           "ProfileStats", "ProfilingPyVM", "PyVM", "enrich", "SharedVariable",
           "DebugMode", "MonitorMode", "NanGuardMode", "trace_length"]
