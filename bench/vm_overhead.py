"""What the Cython VM costs per call and per instruction.

    python bench/vm_overhead.py [--quick]

Prints, in ns (best of several repeats, single thread):
  * numpy's own ``x + 1`` on a float64[10], the yardstick;
  * a compiled-function call ``f(x)`` running one C thunk (``x + c``), with
    argument checks and with ``trust_input``, and the call path alone (the
    same program with an identity thunk);
  * the same through a Python thunk, and through the reference PyVM;
  * dispatch per instruction over 200-instruction chains of trivial C thunks
    (identity, and a 0-d float64 add that reuses its output), with profiling
    off, on, and on with the timeline of the last 100 calls (``set_trace``).
Needs the extensions built: ``python setup.py build_ext --inplace``.
"""
import dataclasses
import os
import sys
import time
import timeit
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # single thread, and no idle spinners
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from vmc._vm import VM  # noqa: E402
from vmc.program import THUNK, Program, int_array  # noqa: E402
from vmc.compile.pyvm import PyVM  # noqa: E402
from vmc.thunks._blas import dot_thunk  # noqa: E402
from vmc.thunks._testthunks import add_thunk, identity_thunk  # noqa: E402

QUICK = "--quick" in sys.argv
NUMBER = 20_000 if QUICK else 200_000
REPEAT = 3 if QUICK else 7


def chain(n, thunk_factory, arity):
    """reg0 (input) -> n thunks -> reg n; reg n+1 holds a constant 1.0 when
    arity is 2. Each intermediate is freed by its only reader."""
    const = n + 1
    ins, frees, thunks = [], [], []
    for i in range(n):
        ins += [i, const][:arity]
        frees.append([i] if 0 < i else [])
        thunks.append(thunk_factory())
    n_free = [len(f) for f in frees]
    return Program(
        n_regs=n + 2, kind=int_array([THUNK] * n), thunk=int_array(range(n)),
        in_start=int_array(range(0, arity * n, arity)), n_in=int_array([arity] * n),
        out_start=int_array(range(n)), n_out=int_array([1] * n),
        free_start=int_array(np.concatenate([[0], np.cumsum(n_free)[:-1]])),
        n_free=int_array(n_free), target=int_array([-1] * n),
        ins=int_array(ins), outs=int_array(range(1, n + 1)),
        frees=int_array([r for f in frees for r in f]),
        thunks=thunks, input_regs=int_array([0]), output_regs=int_array([n]),
        const_regs=int_array([const]), const_values=[np.array(1.0)])


class Function(VM):
    """A Python subclass, as vmc.compile's Function is."""


def function(program, x, trust, cls=VM):
    vm = cls(program)
    vm.set_input_specs([x.dtype], [x.ndim], [(-1,) * x.ndim], [np.asarray])
    vm.unpack_single = True
    vm.trust_input = trust
    return vm


def ns(stmt, **names):
    # CPU time of this thread, best of REPEAT: on a shared machine, wall time
    # also counts the slices other processes get.
    t = timeit.repeat(stmt, globals=names, number=NUMBER, repeat=REPEAT, timer=time.thread_time)
    return min(t) / NUMBER * 1e9


def per_call(x):
    base = ns("x + 1", x=x)
    print(f"{f'numpy x + 1 (float64[{x.size}])':<46}{base:8.0f} ns   1.00x")
    rows = [("a Python call, (lambda a: a)(x)", ns("g(x)", g=lambda a: a, x=x))]
    for trust in (False, True):
        tag = "trust_input" if trust else "checked"
        f = function(chain(1, add_thunk, 2), x, trust)
        rows.append((f"f(x), one C add thunk, {tag}", ns("f(x)", f=f, x=x)))
        f = function(chain(1, identity_thunk, 1), x, trust)
        rows.append((f"call path alone (identity thunk), {tag}", ns("f(x)", f=f, x=x)))
    f = function(chain(1, add_thunk, 2), x, False, cls=Function)
    rows.append(("f(x), C add thunk, Python subclass, checked", ns("f(x)", f=f, x=x)))
    p = chain(1, lambda: (lambda a, b: a + b), 2)
    f = function(p, x, False)
    rows.append(("f(x), one Python thunk a + b, checked", ns("f(x)", f=f, x=x)))
    vm = PyVM(p)
    rows.append(("PyVM.run([x]), same Python thunk", ns("vm.run([x])", vm=vm, x=x)))
    for label, t in rows:
        print(f"{label:<46}{t:8.0f} ns   {t / base:.2f}x")


def per_instruction(x):
    """(chain of n+1 thunks - chain of 1) / n: the loop, the call and the frees."""
    n = 200
    for name, factory, arity, arg in (("identity", identity_thunk, 1, x),
                                      ("0-d add", add_thunk, 2, np.array(0.5))):
        one = function(chain(1, factory, arity), arg, True)
        long = function(chain(n + 1, factory, arity), arg, True)
        per = {}
        for mode in ("off", "profile", "trace"):
            one.profile = long.profile = mode != "off"
            for f in (one, long):       # the timeline of the last 100 calls, or none
                f.set_trace(100 if mode == "trace" else 0)
            per[mode] = (ns("f(a)", f=long, a=arg) - ns("f(a)", f=one, a=arg)) / n
        assert long.counts.sum() > 0 and long.times.sum() > 0 and len(long.trace) == 100
        print(f"{n}-instruction chain of {name:<8}: {per['off']:5.1f} ns per instruction, "
              f"{per['profile']:5.1f} with profiling (+{per['profile'] - per['off']:.1f}), "
              f"{per['trace']:5.1f} with its timeline too "
              f"(+{per['trace'] - per['profile']:.1f})")


def blas_dot(n=10):
    x, y = np.ones((n, n)), np.ones((n, n))
    base = ns("np.dot(x, y)", np=np, x=x, y=y)
    vm = VM(dataclasses.replace(chain(1, dot_thunk, 2), const_values=[y]))
    vm.trust_input = vm.unpack_single = True
    t = ns("f(x)", f=vm, x=x)
    print(f"np.dot({n}x{n}, {n}x{n}) {base:.0f} ns; f(x) = x @ c through the BLAS "
          f"dot thunk {t:.0f} ns ({t / base:.2f}x)")


def main():
    x = np.arange(10.0)
    per_call(x)
    per_instruction(x)
    blas_dot()


if __name__ == "__main__":
    main()
