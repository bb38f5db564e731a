"""Names vmc/gpu takes from rooms that are moving (issue 14 moves the Program
contract to ``vmc.program``): one place to change."""
try:
    from vmc.program import CThunk  # noqa: F401
except ImportError:
    from vmc.compile.program import CThunk  # noqa: F401
