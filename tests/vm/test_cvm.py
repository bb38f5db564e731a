"""The Cython VM against the reference PyVM, on Programs assembled by hand."""
import gc
import sys
import threading
import time
import weakref

import numpy as np
import pytest

from vmc._vm import VM, CellLock
from vmc.program import JUMP, JUMP_IF_FALSE, MOVE, THUNK, Program, int_array
from vmc.compile.pyvm import ProfilingPyVM as PyVM
from vmc.thunks._testthunks import add_thunk, identity_thunk


class Asm:
    """Builds a Program one instruction at a time; jumps name labels."""

    def __init__(self):
        self.rows, self.labels, self.thunks = [], {}, []

    def label(self, name):
        self.labels[name] = len(self.rows)

    def _add(self, kind, ins=(), outs=(), frees=(), fn=None, target=None):
        if fn is not None:
            self.thunks.append(fn)
        self.rows.append((kind, len(self.thunks) - 1 if fn is not None else -1,
                          list(ins), list(outs), list(frees), target))

    def thunk(self, fn, ins, outs, frees=()):
        self._add(THUNK, ins, outs, frees, fn=fn)

    def jump_if_false(self, cond, target, frees=()):
        self._add(JUMP_IF_FALSE, [cond], [], frees, target=target)

    def jump(self, target, frees=()):
        self._add(JUMP, [], [], frees, target=target)

    def move(self, src, dst, frees=()):
        self._add(MOVE, [src], [dst], frees)

    def build(self, n_regs, inputs, outputs, consts=(), shared=(), updates=(), locks=()):
        cols = {k: [] for k in ("ins", "outs", "frees")}
        starts = {k: [] for k in cols}
        for _, _, *lists, _ in self.rows:
            for key, values in zip(cols, lists):
                starts[key].append(len(cols[key]))
                cols[key] += values
        return Program(
            n_regs=n_regs,
            kind=int_array([r[0] for r in self.rows]),
            thunk=int_array([r[1] for r in self.rows]),
            in_start=int_array(starts["ins"]), n_in=int_array([len(r[2]) for r in self.rows]),
            out_start=int_array(starts["outs"]), n_out=int_array([len(r[3]) for r in self.rows]),
            free_start=int_array(starts["frees"]),
            n_free=int_array([len(r[4]) for r in self.rows]),
            target=int_array([-1 if r[5] is None else self.labels[r[5]] for r in self.rows]),
            ins=int_array(cols["ins"]), outs=int_array(cols["outs"]),
            frees=int_array(cols["frees"]), thunks=list(self.thunks),
            input_regs=int_array(inputs), output_regs=int_array(outputs),
            const_regs=int_array([r for r, _ in consts]),
            const_values=[v for _, v in consts],
            shared_regs=int_array([r for r, _ in shared]),
            shared_cells=[c for _, c in shared],
            update_regs=int_array([r for r, _ in updates]),
            update_cells=[c for _, c in updates],
            update_locks=list(locks))


def both(make_program, *runs):
    """Run ``make_program()`` on both VMs for each argument list; return the
    two lists of results (an exception counts as a result)."""
    results = []
    for cls in (PyVM, VM):
        vm = cls(make_program())
        out = []
        for args in runs:
            try:
                out.append(vm.run(args))
            except Exception as exc:
                out.append((type(exc), str(exc), vm.failed_pc))
        results.append(out)
    return results


def assert_same(py, c):
    assert len(py) == len(c)
    for a, b in zip(py, c):
        if isinstance(a, tuple):
            assert a == b
        else:
            assert len(a) == len(b)
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)


# ----------------------------------------------------------- semantics

def test_straight_line():
    def make():
        asm = Asm()
        asm.thunk(lambda a, b: a * b, [0, 1], [2])
        asm.thunk(lambda t, a: t + a, [2, 0], [3], frees=[2])
        asm.thunk(np.negative, [3], [4])
        return asm.build(5, inputs=[0, 1], outputs=[4, 3])
    x, y = np.arange(4.0), np.full(4, 2.0)
    py, c = both(make, [x, y], [y, x])
    assert_same(py, c)
    np.testing.assert_array_equal(c[0][0], -(x * y + x))


class Obj:
    """Something a weakref can watch."""


def test_frees_release_registers():
    refs = []

    def make_obj():
        o = Obj()
        refs.append(weakref.ref(o))
        return o

    def make(free):
        asm = Asm()
        asm.thunk(make_obj, [], [1])
        asm.thunk(lambda o, x: x, [1, 0], [2], frees=[1] if free else [])
        asm.thunk(lambda: refs[-1]() is None, [], [3])   # is the object gone yet?
        return asm.build(4, inputs=[0], outputs=[3])

    x = np.ones(3)
    for cls in (PyVM, VM):
        for free in (True, False):
            vm = cls(make(free))
            before = sys.getrefcount(x)
            (gone,) = vm.run([x])
            assert gone is free
            assert refs[-1]() is None          # cleared after the run either way
            assert sys.getrefcount(x) == before  # the input register let go too


def test_jump_if_false_skips_block():
    def boom(a):
        raise AssertionError("a skipped block ran")

    def make(then_fn, else_fn):
        # r4 = then_fn(r1) if r0 else else_fn(r2); the jump frees r1 like the block would
        asm = Asm()
        asm.jump_if_false(0, "else", frees=[1])
        asm.thunk(then_fn, [1], [3], frees=[1])
        asm.move(3, 4, frees=[3])
        asm.jump("end", frees=[2])
        asm.label("else")
        asm.thunk(else_fn, [2], [3], frees=[2])
        asm.move(3, 4, frees=[3])
        asm.label("end")
        return asm.build(5, inputs=[0, 1, 2], outputs=[4])

    a, b = np.arange(3.0), np.arange(3.0) + 10
    for cond in (np.array(False), False, np.bool_(False), 0, None):
        py, c = both(lambda: make(boom, np.negative), [cond, a, b])
        assert_same(py, c)
        np.testing.assert_array_equal(c[0][0], -b)
    for cond in (np.array(True), True, np.float64(2.0), 1):
        py, c = both(lambda: make(np.negative, boom), [cond, a, b])
        assert_same(py, c)
        np.testing.assert_array_equal(c[0][0], -a)


def test_jump_if_false_releases_what_the_block_would():
    refs = []

    def make():
        asm = Asm()
        asm.thunk(lambda: refs.append(weakref.ref(o := Obj())) or o, [], [1])
        asm.jump_if_false(0, "end", frees=[1])
        asm.thunk(lambda o: o, [1], [2], frees=[1])
        asm.label("end")
        asm.thunk(lambda: refs[-1]() is None, [], [3])
        return asm.build(4, inputs=[0], outputs=[3])

    py, c = both(make, [False], [True])
    assert py == c == [[True], [False]]


def test_move_and_multi_output():
    def make():
        asm = Asm()
        asm.thunk(lambda a: (a + 1, a * 2, a - 1), [0], [1, 2, 3])
        asm.move(2, 4, frees=[2])
        asm.thunk(lambda: [7, 8], [], [5, 6])    # any sequence unpacks
        return asm.build(7, inputs=[0], outputs=[1, 4, 3, 5, 6, 2])
    py, c = both(make, [np.arange(3.0)])
    assert_same(py, c)
    assert c[0][-1] is None                      # freed after the move
    assert c[0][3:5] == [7, 8]


def test_multi_output_wrong_count_raises():
    asm = Asm()
    asm.thunk(lambda: (1, 2, 3), [], [0, 1])
    vm = VM(asm.build(2, inputs=[], outputs=[0]))
    with pytest.raises(ValueError, match="3 values for 2 outputs"):
        vm.run([])
    assert vm.failed_pc == 0


def test_constants_persist_across_runs():
    c0 = np.array(3.0)

    def make():
        asm = Asm()
        asm.thunk(lambda x, c: x + c, [0, 1], [2])
        return asm.build(3, inputs=[0], outputs=[2], consts=[(1, c0)])

    py, c = both(make, [np.ones(2)], [np.zeros(2)], [np.ones(2)])
    assert_same(py, c)
    np.testing.assert_array_equal(c[2][0], [4.0, 4.0])
    base = sys.getrefcount(c0)
    vm = VM(make())
    held = sys.getrefcount(c0)
    vm.run([np.ones(2)])
    assert sys.getrefcount(c0) == held        # not released, not taken twice
    del vm
    assert sys.getrefcount(c0) == base


def _update_program(cell, fail):
    asm = Asm()
    asm.thunk(lambda w, x: w - 0.1 * x, [1, 0], [2])       # the new value of w
    asm.thunk(lambda w: w.sum(), [1], [3])
    if fail:
        asm.thunk(lambda s: 1 / 0, [3], [4])               # fails after the update value
    return asm.build(5, inputs=[0], outputs=[3], shared=[(1, cell)], updates=[(2, cell)])


def test_updates_commit_after_success():
    for cls in (PyVM, VM):
        cell = [np.ones(3)]
        vm = cls(_update_program(cell, fail=False))
        for k in range(1, 4):
            (s,) = vm.run([np.ones(3)])
            np.testing.assert_allclose(cell[0], 1 - 0.1 * k)
            np.testing.assert_allclose(s, 3 * (1 - 0.1 * (k - 1)))


def test_failure_leaves_shared_cells_and_clears_registers():
    for cls in (PyVM, VM):
        w0 = np.ones(3)
        cell = [w0]
        vm = cls(_update_program(cell, fail=True))
        x = np.ones(3)
        before = sys.getrefcount(x)
        with pytest.raises(ZeroDivisionError):
            vm.run([x])
        assert cell[0] is w0 and np.all(w0 == 1)
        assert vm.failed_pc == 2
        assert sys.getrefcount(x) == before


def test_failed_pc_and_recovery():
    def make():
        asm = Asm()
        asm.thunk(np.negative, [0], [1])
        asm.thunk(lambda a: a if a.size else [][0], [1], [2])
        return asm.build(3, inputs=[0], outputs=[2])

    py, c = both(make, [np.zeros(0)], [np.ones(2)])
    assert py[0][:2] == c[0][:2] == (IndexError, "list index out of range")
    assert py[0][2] == c[0][2] == 1
    vms = PyVM(make()), VM(make())
    for vm in vms:
        with pytest.raises(IndexError):
            vm.run([np.zeros(0)])
    assert vms[0].failed_inputs == vms[1].failed_inputs == [((0,), np.dtype(np.float64))]
    vms[1].run([np.ones(1)])
    assert vms[1].failed_pc == -1 and vms[1].failed_inputs == []   # reset by a good run


def test_c_thunks_in_the_vm():
    one = np.array(1.0)
    asm = Asm()
    asm.thunk(identity_thunk(), [0], [1])
    asm.thunk(add_thunk(), [1, 3], [2], frees=[1])
    vm = VM(asm.build(4, inputs=[0], outputs=[2, 1], consts=[(3, one)]))
    x = np.arange(4.0)
    y, freed = vm.run([x])
    np.testing.assert_array_equal(y, x + 1)
    assert freed is None
    with pytest.raises(ValueError, match="differ"):
        VM(asm.build(4, inputs=[0], outputs=[2], consts=[(3, np.ones(2))])).run([x])
    with pytest.raises(TypeError, match="float64"):
        vm.run([np.arange(4)])
    assert vm.failed_pc == 1


def test_c_thunk_output_reuse_never_touches_held_arrays():
    asm = Asm()
    asm.thunk(add_thunk(), [0, 1], [2])
    vm = VM(asm.build(3, inputs=[0, 1], outputs=[2]))
    x = np.arange(3.0)
    (first,) = vm.run([x, np.array(1.0)])
    (second,) = vm.run([x, np.array(2.0)])
    assert second is not first
    np.testing.assert_array_equal(first, x + 1)   # held by us: never rewritten
    addr = second.ctypes.data
    del second
    (third,) = vm.run([x, np.array(3.0)])
    assert third.ctypes.data == addr            # nobody held it: reused
    np.testing.assert_array_equal(third, x + 3)


def test_profiling_counts_and_times():
    def make():
        asm = Asm()
        asm.jump_if_false(0, "end")
        asm.thunk(lambda: 1, [], [1])
        asm.label("end")
        asm.thunk(lambda: 2, [], [2])
        return asm.build(3, inputs=[0], outputs=[2])

    for cls in (PyVM, VM):
        vm = cls(make())
        vm.run([True])
        assert vm.counts.sum() == 0 and vm.times.sum() == 0
        vm.profile = True
        for cond in (True, False, False):
            vm.run([cond])
        assert list(vm.counts) == [3, 1, 3]
        assert vm.times.dtype == np.int64 and np.all(vm.times[vm.counts > 0] > 0)
        vm.profile = False
        vm.run([True])
        assert list(vm.counts) == [3, 1, 3]


def test_profile_holds_any_object_and_set_profiling_switches_timers():
    class Report:
        pass

    vm = VM(one_instr(np.negative))
    assert vm.profile is False
    report = vm.profile = Report()            # what Function stores there
    vm.run([1.0])
    assert vm.profile is report and vm.counts[0] == 1
    vm.set_profiling(False)
    vm.run([1.0])
    assert vm.profile is report and vm.counts[0] == 1
    vm.set_profiling(True)
    vm.run([1.0])
    assert vm.counts[0] == 2
    vm.profile = None
    vm.run([1.0])
    assert vm.counts[0] == 2


def test_clear_registers():
    vm = VM(one_instr(np.negative))
    vm.clear_registers()                      # nothing held between runs
    assert vm.run([2.0]) == [-2.0]


def test_validation_at_construction():
    asm = Asm()
    asm.thunk(np.negative, [0], [5])
    with pytest.raises(ValueError, match="outside"):
        VM(asm.build(3, inputs=[0], outputs=[1]))
    asm = Asm()
    asm.thunk(42, [0], [1])
    with pytest.raises(TypeError, match="neither callable"):
        VM(asm.build(2, inputs=[0], outputs=[1]))
    asm = Asm()
    asm.jump("nowhere")
    asm.labels["nowhere"] = 7
    with pytest.raises(ValueError, match="jump target"):
        VM(asm.build(1, inputs=[], outputs=[]))


def test_reentrant_call_runs_on_a_frame_of_its_own():
    holder = []
    asm = Asm()
    # f(x) = f(x - 1) + 1, f(0) = 0: each level is a call inside the one above it
    asm.thunk(lambda x: 0 if x == 0 else holder[0].run([x - 1])[0] + 1, [0], [1])
    vm = VM(asm.build(2, inputs=[0], outputs=[1]))
    holder.append(vm)
    assert vm.run([6]) == [6]
    assert vm.run([3]) == [3]          # the frames went back to the pool and serve again


def test_reentrant_call_updating_the_same_cell_is_refused():
    holder, cell = [], [0]
    asm = Asm()
    # a thunk that calls its own VM again while the call holds the cell's lock
    asm.thunk(lambda c: (holder[0].run([]), c + 1)[1], [0], [1])
    vm = VM(asm.build(2, inputs=[], outputs=[], shared=[(0, cell)], updates=[(1, cell)],
                      locks=[CellLock()]))
    holder.append(vm)
    with pytest.raises(RuntimeError, match="wait for itself"):
        vm.run([])
    assert cell == [0]
    holder[0] = VM(Asm().build(0, [], []))
    assert vm.run([]) == [] and cell == [1]     # the lock was given back after the failure


def test_update_locks_must_be_cell_locks():
    cell = [0]
    asm = Asm()
    asm.thunk(lambda c: c + 1, [0], [1])
    with pytest.raises(TypeError, match="update_locks.0. must be a vmc._vm.CellLock"):
        VM(asm.build(2, inputs=[], outputs=[], shared=[(0, cell)], updates=[(1, cell)],
                     locks=[threading.Lock()]))


def test_threads_share_one_vm():
    def slow_inc(x):
        time.sleep(0)                  # lets the other thread into the VM mid-call
        return x + 1

    asm = Asm()
    asm.thunk(slow_inc, [0], [1])
    asm.thunk(lambda x: x * 2, [1], [2])
    vm = VM(asm.build(3, inputs=[0], outputs=[2]))
    errors = []

    def work(k):
        for i in range(2000):
            try:
                assert vm.run([k * 10000 + i]) == [2 * (k * 10000 + i + 1)]
            except Exception as exc:      # every call must run, and see its own registers
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


# ------------------------------------------------------------ the call path

def one_instr(fn, n_in=1):
    asm = Asm()
    asm.thunk(fn, list(range(n_in)), [n_in])
    return asm.build(n_in + 1, inputs=list(range(n_in)), outputs=[n_in])


class Filter:
    def __init__(self, dtype):
        self.dtype, self.calls = dtype, 0

    def __call__(self, value):
        self.calls += 1
        value = np.asarray(value)
        if value.dtype.kind == "f" and self.dtype.kind == "i":
            raise TypeError(f"expected {self.dtype}, got {value.dtype}")
        return value.astype(self.dtype)


def checked_vm(fn=identity_thunk(), dtype=np.float64, ndim=1, shape=(-1,)):
    vm = VM(one_instr(fn))
    filt = Filter(np.dtype(dtype))
    vm.set_input_specs([dtype], [ndim], [shape], [filt])
    vm.unpack_single = True
    return vm, filt


def test_call_fast_path_uses_the_argument_as_is():
    vm, filt = checked_vm()
    x = np.arange(3.0)
    assert vm(x) is x
    x2 = np.frombuffer(np.arange(3.0).tobytes(), dtype=np.dtype("<f8"))   # equal dtype
    assert vm(x2) is x2
    assert filt.calls == 0


@pytest.mark.parametrize("arg", [
    np.arange(3), [1.0, 2.0], np.arange(6.0)[::2],
    np.arange(3.0).astype(">f8"), np.float64(2.0)])
def test_call_slow_path_goes_through_filter(arg):
    vm, filt = checked_vm()
    out = vm(arg)
    assert filt.calls == (0 if type(arg) is np.ndarray and arg.dtype == np.float64 else 1)
    np.testing.assert_array_equal(out, np.asarray(arg, np.float64))


def test_call_static_shape_and_rank():
    vm, filt = checked_vm(ndim=2, shape=(2, -1))
    a = np.ones((2, 5))
    assert vm(a) is a and filt.calls == 0
    vm(np.ones((3, 5)))                       # static dim differs: the filter decides
    vm(np.ones(5))                            # rank differs: the filter decides
    assert filt.calls == 2


def test_call_filter_error_propagates_and_clears():
    vm, filt = checked_vm(dtype=np.int64)
    x = np.arange(3.0)
    before = sys.getrefcount(x)
    with pytest.raises(TypeError, match="expected int64"):
        vm(x)
    assert sys.getrefcount(x) == before and vm.failed_pc == -1
    assert list(vm(np.arange(2))) == [0, 1]


def test_trust_input_skips_checks():
    vm, filt = checked_vm(dtype=np.int64)
    vm.trust_input = True
    x = np.arange(3.0)
    assert vm(x) is x and filt.calls == 0


def test_call_without_specs():
    vm = VM(one_instr(identity_thunk()))
    with pytest.raises(TypeError, match="set_input_specs"):
        vm(1)
    vm.trust_input = True
    assert vm(1) == [1]
    with pytest.raises(ValueError, match="need 1 entries"):
        vm.set_input_specs([np.float64] * 2, [0, 0], [(), ()], [float, float])


def test_unpack_single_and_lists():
    vm, _ = checked_vm()
    x = np.ones(2)
    assert vm(x) is x
    vm.unpack_single = False
    assert vm(x) == [x] and vm.run([x]) == [x]


def test_base_bind_and_handle_error():
    vm, _ = checked_vm(fn=lambda x: x[5])
    with pytest.raises(TypeError, match="expected 1 argument"):
        vm()
    with pytest.raises(TypeError, match="expected 1 argument"):
        vm(1, 2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        vm(x=1)
    with pytest.raises(IndexError):
        vm(np.ones(2))
    assert vm.failed_pc == 0 and vm.failed_inputs == [((2,), np.dtype(np.float64))]


class Function(VM):
    """What vmc.compile does: a Python subclass with names, defaults, messages."""

    def __init__(self, program, names, defaults):
        super().__init__(program)
        self.names, self.defaults, self.seen = names, defaults, []

    def _bind(self, args, kwargs):
        values = dict(self.defaults)
        values.update(zip(self.names, args))
        values.update(kwargs)
        return [values[n] for n in self.names]

    def _handle_error(self, exc):
        self.seen.append((self.failed_pc, self.failed_inputs))
        raise type(exc)(f"in instruction {self.failed_pc}: {exc}") from exc


def test_python_subclass_binds_and_handles_errors():
    f = Function(one_instr(lambda a, b: a[b], n_in=2), ["a", "b"], {"b": 1})
    f.set_input_specs([np.float64, np.int64], [1, 0], [(-1,), ()], [np.asarray] * 2)
    f.unpack_single = True
    a = np.arange(3.0)
    assert f(a, np.array(2)) == 2.0
    assert f(a) == 1.0 and f(b=0, a=a) == 0.0 and f(a, b=2) == 2.0
    with pytest.raises(IndexError, match="in instruction 0: index 9") as info:
        f(a, 9)
    assert isinstance(info.value.__cause__, IndexError)
    (pc, inputs), = f.seen
    assert pc == 0 and inputs == [((3,), np.dtype(np.float64)), ((), int)]
    f(a)
    assert f.failed_pc == -1 and f.failed_inputs == []    # reset by the next call
    f.extra = "subclasses have a __dict__"
    assert f.extra


def test_subclass_overriding_call_is_respected():
    class Wrapped(VM):
        def __call__(self, *args):
            return ("wrapped", super().__call__(*args))

    w = Wrapped(one_instr(identity_thunk()))
    w.trust_input = w.unpack_single = True
    assert w(5) == ("wrapped", 5)


def test_handle_error_return_value_is_the_result():
    class Quiet(VM):
        def _handle_error(self, exc):
            return "recovered"

    q = Quiet(one_instr(lambda x: 1 / x))
    q.trust_input = True
    assert q(0) == "recovered"
    assert q(2) == [0.5]


def test_calls_do_not_leak_references():
    f = Function(one_instr(identity_thunk()), ["x"], {})
    f.set_input_specs([np.float64], [1], [(-1,)], [np.asarray])
    x, lst = np.ones(3), [1.0, 2.0]
    before = sys.getrefcount(x), sys.getrefcount(lst)
    for _ in range(100):
        f(x)
        f(x=x)
        f(lst)
        f.run([x])
    assert (sys.getrefcount(x), sys.getrefcount(lst)) == before


class Picklable(VM):
    """Pickling belongs to the subclass: it re-runs VM.__init__ on load."""

    def __init__(self, program):
        super().__init__(program)
        self.source = program

    def __getstate__(self):
        return {"source": self.source}

    def __setstate__(self, state):
        Picklable.__init__(self, state["source"])


def test_pickling_is_left_to_subclasses():
    import pickle
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(VM(one_instr(np.negative)))
    f = pickle.loads(pickle.dumps(Picklable(one_instr(np.negative))))
    f.trust_input = True
    assert type(f) is Picklable and f(np.ones(2))[0].tolist() == [-1.0, -1.0]
