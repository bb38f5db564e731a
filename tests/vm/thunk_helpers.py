"""Shared pieces of the C thunk tests: a VM running one thunk, and the check
that running it leaks no reference to its arguments."""
import gc
import sys

from vmc._vm import VM
from vmc.program import THUNK, Program, int_array


def thunk_vm(thunk, n_in, n_out=1):
    """A VM running one instruction: regs 0..n_in-1 -> the next n_out regs."""
    outs = range(n_in, n_in + n_out)
    return VM(Program(
        n_regs=n_in + n_out, kind=int_array([THUNK]), thunk=int_array([0]),
        in_start=int_array([0]), n_in=int_array([n_in]), out_start=int_array([0]),
        n_out=int_array([n_out]), free_start=int_array([0]), n_free=int_array([0]),
        target=int_array([-1]), ins=int_array(range(n_in)), outs=int_array(outs),
        frees=int_array([]), thunks=[thunk], input_regs=int_array(range(n_in)),
        output_regs=int_array(outs)))


def assert_no_leaks(vm, args, runs=50):
    """Run ``vm`` on ``args`` (ValueErrors allowed) and check that every
    argument's reference count is back where it was. A raised error's
    traceback cycle is collected before each count."""
    gc.collect()
    before = [sys.getrefcount(a) for a in args]
    for _ in range(runs):
        try:
            vm.run(list(args))
        except ValueError:
            pass
    gc.collect()
    assert [sys.getrefcount(a) for a in args] == before
