"""How the ops this package makes run: numpy thunks, and the C builders that
lower them to the Cython BLAS thunks and to generated elementwise kernels.

Registered with ``vmc.thunks.registry`` when ``vmc.opt`` is imported (which
``vmc.function`` does before it builds thunks).
"""
from __future__ import annotations

import warnings

import numpy as np

from vmc.tensor.elemwise import DimShuffle, Elemwise
from vmc.tensor.math import CAReduce, Dot, normalize_axis
from vmc.tensor.nnet import LogSoftmax, Softmax
from vmc.tensor.shape import ShapeI
from vmc.thunks.registry import build_each, register, register_c_builder

from .blas import BLAS_DTYPES, Gemm, Gemv, Ger
from .fusion import FusedElemwise
from .nnet import CrossentropySoftmaxArgmax, CrossentropySoftmaxDx


# -- BLAS ---------------------------------------------------------------------------
def _update(inplace, z, r, beta):
    """``beta * z + r`` (``r`` already scaled, a fresh array), into ``z`` when in place."""
    if beta == 0:
        return r
    if inplace and isinstance(z, np.ndarray) and z.flags.writeable and z.shape == r.shape:
        if beta != 1:
            z *= beta
        z += r
        return z
    if beta != 1:
        r += beta * z
    else:
        r += z
    return r


def _product_update_thunk(name, product):
    """``beta * z + alpha * (a @ b)`` with numpy, for Gemm and Gemv."""
    def factory(node, destroyable):
        inplace = 0 in destroyable

        def thunk(z, alpha, a, b, beta):
            r = np.dot(a, b)
            if r.shape != np.shape(z):
                raise ValueError(f"{name}: z has shape {np.shape(z)} but {product} has "
                                 f"{r.shape}")
            if alpha != 1:
                r *= alpha
            return _update(inplace, z, r, beta)
        return thunk
    return factory


register(Gemm)(_product_update_thunk("gemm", "x @ y"))
register(Gemv)(_product_update_thunk("gemv", "a @ x"))


@register(Ger)
def ger_thunk(node, destroyable):
    inplace = 0 in destroyable

    def thunk(a, alpha, x, y):
        r = np.multiply.outer(x * alpha, y)
        if r.shape != np.shape(a):
            raise ValueError(f"ger: a has shape {np.shape(a)} but outer(x, y) has {r.shape}")
        return _update(inplace, a, r, 1)
    return thunk


_BLAS_OPS = (Gemm, Gemv, Ger, Dot)


def _blas_c_thunk(_blas, node, destroyable):
    """The ``vmc.thunks._blas`` thunk of a node, or None where it does not apply."""
    op = node.op
    if not isinstance(op, _BLAS_OPS):
        return None
    if any(v.type.dtype not in BLAS_DTYPES for v in node.inputs if v.type.ndim):
        return None
    if len({v.type.dtype for v in node.inputs}) != 1:
        return None
    inplace = 0 in destroyable
    if isinstance(op, Gemm):
        return _blas.gemm_thunk(inplace)
    if isinstance(op, Gemv):
        return _blas.gemv_thunk(inplace)
    if isinstance(op, Ger):
        return _blas.ger_thunk(inplace)
    return _blas.dot_thunk()


@register_c_builder
def blas_c_builder(items):
    """Gemm, Gemv, Ger and Dot of float32/float64 through ``vmc.thunks._blas``
    (asked only when the Cython VM runs the program)."""
    return build_each(items, "vmc.thunks._blas", _blas_c_thunk)


# -- softmax + cross-entropy -----------------------------------------------------------
def _check_targets(op, y, k, x_shape):
    """Targets must index a class: numpy would wrap a negative one silently."""
    if y.size and (y.min() < 0 or y.max() >= k):
        i = int(np.flatnonzero((y < 0) | (y >= k))[0])
        raise ValueError(f"{op}: target {y[i]} of row {i} is outside [0, {k}) (logits of "
                         f"shape {x_shape})")


@register(CrossentropySoftmaxArgmax)
def crossentropy_softmax_thunk(node, destroyable):
    def thunk(x, y):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"crossentropy_softmax: {x.shape[0]} rows of logits but "
                             f"{y.shape[0]} targets (shapes {x.shape} and {y.shape})")
        if x.shape[1] == 0:
            raise ValueError(f"crossentropy_softmax: logits of shape {x.shape} have no "
                             f"classes")
        _check_targets("crossentropy_softmax", y, x.shape[1], x.shape)
        am = np.argmax(x, axis=1)
        m = x[np.arange(x.shape[0]), am][:, None]
        e = np.exp(x - m)
        s = e.sum(axis=1, keepdims=True)
        e /= s
        nll = np.log(s[:, 0]) + m[:, 0] - x[np.arange(x.shape[0]), y]
        return nll.astype(x.dtype, copy=False), e, am.astype(np.int64, copy=False)
    return thunk


@register(CrossentropySoftmaxDx)
def crossentropy_softmax_dx_thunk(node, destroyable):
    inplace = 1 in destroyable

    def thunk(g, sm, y):
        if sm.shape[0] != y.shape[0] or g.shape[0] not in (1, y.shape[0]):
            raise ValueError(f"crossentropy_softmax_dx: shapes {g.shape}, {sm.shape}, "
                             f"{y.shape} do not match")
        _check_targets("crossentropy_softmax_dx", y, sm.shape[1], sm.shape)
        out = sm if inplace and sm.flags.writeable else sm.copy()
        out *= g[:, None]
        out[np.arange(sm.shape[0]), y] -= g
        return out
    return thunk


_NNET_OPS = (CrossentropySoftmaxArgmax, CrossentropySoftmaxDx, Softmax, LogSoftmax)


def _nnet_c_thunk(_nnet, node, destroyable):
    """The ``vmc.thunks._nnet`` thunk of a node, or None where it does not apply."""
    op = node.op
    if not isinstance(op, _NNET_OPS):
        return None
    if isinstance(op, CrossentropySoftmaxDx):
        dtype = node.inputs[1].type.dtype
    else:
        dtype = node.inputs[0].type.dtype
    if dtype not in BLAS_DTYPES:
        return None
    if isinstance(op, CrossentropySoftmaxArgmax):
        return _nnet.crossentropy_softmax_thunk(dtype)
    if isinstance(op, CrossentropySoftmaxDx):
        return _nnet.crossentropy_softmax_dx_thunk(dtype, 1 in destroyable)
    ndim = node.inputs[0].type.ndim
    if ndim > 2 or normalize_axis(op.axis, ndim, "softmax") != (ndim - 1,):
        return None
    make = _nnet.log_softmax_thunk if isinstance(op, LogSoftmax) else _nnet.softmax_thunk
    return make(dtype, 0 in destroyable)


@register_c_builder
def nnet_c_builder(items):
    """Softmax and log-softmax over the last axis, and the softmax cross-entropy
    and its gradient, of float32/float64 through ``vmc.thunks._nnet``."""
    return build_each(items, "vmc.thunks._nnet", _nnet_c_thunk)


# -- views and shapes ------------------------------------------------------------------
def _shapes_c_thunk(_shapes, node, destroyable):
    op = node.op
    if isinstance(op, DimShuffle):
        return _shapes.dimshuffle_thunk(op.input_ndim, op.new_order)
    if isinstance(op, ShapeI):
        return _shapes.shape_i_thunk(op.i)
    return None


@register_c_builder
def shapes_c_builder(items):
    """DimShuffle views and Shape_i through ``vmc.thunks._shapes``."""
    return build_each(items, "vmc.thunks._shapes", _shapes_c_thunk)


# -- fused elementwise: numpy ---------------------------------------------------------------
_OUT_UFUNC = {"sqr": np.square}   # table entries that are not ufuncs but have one


def _plan(op, node):
    """Per step: (value index, impl, argument indices, dtype, use out=, values
    dying after it)."""
    n_in, n_c = op.n_in, len(op.consts)
    last = {}
    for j, (_, args, _) in enumerate(op.ops):
        for a in args:
            last[a] = j
    keep = set(op.outputs)
    steps = []
    for j, (sop, args, dtype) in enumerate(op.ops):
        impl = _OUT_UFUNC.get(sop.name, sop.impl)
        ufunc = isinstance(impl, np.ufunc) and impl.nout == 1 and impl.nin == len(args)
        # inputs first: a result goes into a buffer the scheduler gave up (an
        # update's old value) before it takes one of the kernel's own temporaries
        dying = [a for a in sorted(set(args), key=lambda a: (a >= n_in, a))
                 if last[a] == j and a not in keep and not n_in <= a < n_in + n_c]
        steps.append((n_in + n_c + j, impl, args, np.dtype(dtype), ufunc, dying))
    return steps


@register(FusedElemwise)
def fused_elemwise_thunk(node, destroyable):
    """Evaluate the DAG with numpy; each ufunc writes into a buffer that dies
    at that very step (an argument of it: numpy handles the overlap) or
    earlier (a dead temporary, or an input the scheduler gave up), so
    ``w - lr * g`` with a dying ``w`` allocates nothing."""
    op = node.op
    steps = _plan(op, node)
    consts = op.const_values()
    n_in = op.n_in
    loop_bcast = tuple(all(v.type.shape[d] == 1 for v in node.inputs)
                       for d in range(node.inputs[0].type.ndim))
    reusable = {i for i in destroyable if node.inputs[i].type.broadcastable == loop_bcast}
    reusable |= set(range(n_in + len(consts), n_in + len(consts) + len(steps)))
    checks = static_broadcast_checks(node)
    outs = op.outputs
    reduce = [None if r is None else (_REDUCE[r[0]], r[1], np.dtype(r[2])) for r in op.reduce]
    single = len(outs) == 1
    ndim = node.inputs[0].type.ndim

    def buffer(v, dtype, loop):
        return (type(v) is np.ndarray and v.dtype == dtype and v.shape == loop
                and v.ndim and v.flags.writeable)

    def thunk(*args):
        loop = (check_static_broadcast(node, args, checks, ndim) if len(args) > 1
                else np.shape(args[0]))
        vals = list(args) + consts + [None] * len(steps)
        pool = {}
        for k, impl, a_idx, dtype, ufunc, dying in steps:
            a = [vals[i] for i in a_idx]
            out = None
            if ufunc:
                for i in dying:
                    if i in reusable and buffer(vals[i], dtype, loop):
                        out = vals[i]
                        break
                else:
                    free = pool.get(dtype)
                    out = free.pop() if free else None
            if out is not None:
                r = impl(*a, out=out)
            else:
                r = impl(*a)
                if r.dtype != dtype:
                    r = r.astype(dtype)
            vals[k] = r
            for i in dying:
                v = vals[i]
                vals[i] = None
                if v is not out and i in reusable and type(v) is np.ndarray and v.ndim \
                        and v.flags.writeable and v.shape == loop:
                    pool.setdefault(v.dtype, []).append(v)
        results = []
        for k, red in zip(outs, reduce):
            v = vals[k]
            if red is not None:
                v = np.asarray(red[0](v, axis=red[1]), dtype=red[2])
            elif not isinstance(v, np.ndarray):
                v = np.asarray(v)
            results.append(v)
        return results[0] if single else tuple(results)
    return thunk


_REDUCE = {"add": np.sum, "mul": np.prod, "maximum": np.max, "minimum": np.min}


def static_broadcast_checks(node):
    """``[(input index, dims that may not broadcast)]`` for ``check_static_broadcast``."""
    return [(i, tuple(d for d, s in enumerate(v.type.shape) if s != 1))
            for i, v in enumerate(node.inputs)]


def check_static_broadcast(node, args, checks, ndim):
    """Only dims of static length 1 broadcast (as the unfused Elemwise thunks check)."""
    shapes = [np.shape(a) for a in args]
    try:
        loop = np.broadcast_shapes(*shapes)
    except ValueError:
        loop = tuple(max(s[d] for s in shapes) for d in range(ndim))
    for i, dims in checks:
        s = shapes[i]
        for d in dims:
            if s[d] != loop[d]:
                raise ValueError(f"{node.op}: input shapes {', '.join(map(str, shapes))} do "
                                 f"not match (input {i}, dim {d}: {s[d]} vs {loop[d]}; only "
                                 f"dims of static length 1 broadcast)")
    return loop


# -- fused elementwise: generated C ---------------------------------------------------------
_REDUCE_C = {"add": "add", "maximum": "max", "minimum": "min"}


def kernel_spec(node, destroyable=frozenset()):
    """The ``cgen.KernelSpec`` of a FusedElemwise node (NotImplementedError for
    what the generator does not take)."""
    from vmc.thunks.cgen import KernelSpec
    op = node.op
    n_in, n_c = op.n_in, len(op.consts)
    names = [f"i{k}" for k in range(n_in)] + [f"c{k}" for k in range(n_c)] + \
            [f"t{j}" for j in range(len(op.ops))]
    constants = tuple((f"c{k}", v.item(), d)
                      for k, (v, (d, _)) in enumerate(zip(op.const_values(), op.consts)))
    body = tuple((names[n_in + n_c + j], sop.name, tuple(names[a] for a in args), dtype)
                 for j, (sop, args, dtype) in enumerate(op.ops))
    outputs = tuple((names[k], o.type.dtype) for k, o in zip(op.outputs, node.outputs))
    reduce = None
    reds = set(op.reduce)
    if reds != {None}:
        if len(reds) != 1 or None in reds:
            raise NotImplementedError("outputs with different reductions")
        name, axes, _ = op.reduce[0]
        if name not in _REDUCE_C:
            raise NotImplementedError(f"reduce {name}")
        reduce = (_REDUCE_C[name], tuple(axes), False)
    inplace, used = [], set()
    # In place only with one output: the generated row loops take restrict
    # pointers, so with several outputs one output's stores may be ordered
    # before another output's loads of the input it overwrites.
    if reduce is None and len(node.outputs) == 1:
        for q, o in enumerate(node.outputs):
            for i in sorted(destroyable):
                v = node.inputs[i]
                if i not in used and v.type.dtype == o.type.dtype and \
                        v.type.broadcastable == o.type.broadcastable:
                    inplace.append((q, i))
                    used.add(i)
                    break
    inputs = tuple((v.type.dtype, v.type.broadcastable) for v in node.inputs)
    return KernelSpec(inputs=inputs, body=body, constants=constants, outputs=outputs,
                      inplace=tuple(inplace), reduce=reduce)


_warned = []


def elemwise_kernel_spec(node, destroyable=frozenset()):
    """The ``cgen.KernelSpec`` of a plain Elemwise node (one op, no casts:
    every input has the output's dtype), for graphs that were not fused."""
    from vmc.thunks.cgen import KernelSpec
    out = node.outputs[0]
    dtype = out.type.dtype
    if len(node.outputs) != 1 or any(v.type.dtype != dtype or v.type.ndim != out.type.ndim
                                     for v in node.inputs):
        raise NotImplementedError("mixed dtypes or ranks")
    names = tuple(f"i{k}" for k in range(len(node.inputs)))
    inplace = ()
    for i in sorted(destroyable):
        if node.inputs[i].type.broadcastable == out.type.broadcastable:
            inplace = ((0, i),)
            break
    return KernelSpec(inputs=tuple((dtype, v.type.broadcastable) for v in node.inputs),
                      body=(("t0", node.op.scalar_op.name, names, dtype),), constants=(),
                      outputs=(("t0", dtype),), inplace=inplace, reduce=None)


def careduce_kernel_spec(node, destroyable=frozenset()):
    """The ``cgen.KernelSpec`` of a sum/max/min of floats that no elementwise
    producer was fused into: the reduction kernel with an empty body (a numpy
    thunk pays ~10 us of dispatch for a small sum, the kernel ~0.3 us)."""
    from vmc.thunks.cgen import KernelSpec
    op, x, out = node.op, node.inputs[0], node.outputs[0]
    if (op.scalar_name not in _REDUCE_C or not op.axis or x.type.dtype[0] != "f"
            or out.type.dtype != x.type.dtype):
        raise NotImplementedError(f"reduce {op.scalar_name} of {x.type.dtype}")
    return KernelSpec(inputs=((x.type.dtype, x.type.broadcastable),), body=(),
                      outputs=(("i0", x.type.dtype),),
                      reduce=(_REDUCE_C[op.scalar_name], tuple(op.axis), False))


_KERNEL_SPECS = ((FusedElemwise, kernel_spec), (Elemwise, elemwise_kernel_spec),
                 (CAReduce, careduce_kernel_spec))


def _spec_maker(op):
    for cls, make in _KERNEL_SPECS:
        if isinstance(op, cls):
            return make
    return None


@register_c_builder(generates_c=True)
def fused_c_builder(items):
    """All FusedElemwise nodes of a function, and the Elemwise and CAReduce
    nodes left unfused, compiled together into one module."""
    todo = [(pc, node, d, make) for pc, node, d in items
            if (make := _spec_maker(node.op)) is not None]
    if not todo:
        return {}
    try:
        from vmc.thunks import cgen
        from vmc.thunks.cgen.elemwise import kernel_source
    except ImportError:
        return {}
    if not cgen.have_compiler(probe=False):
        return {}
    pcs, specs = [], []
    for pc, node, d, make in todo:
        try:
            specs.append(make(node, d))
        except NotImplementedError:
            continue
        pcs.append(pc)
    # Generating a kernel's C costs about as much as hashing it for the cache,
    # so the common case (every kernel supported) builds at once; only when
    # that fails is each kernel's source generated alone, to drop the ones the
    # generator does not take (NotImplementedError) as before.
    try:
        return dict(zip(pcs, cgen.build_kernels(specs)))
    except Exception as exc:         # noqa: BLE001 - sorted out below
        first_error = exc
    kept = []
    for pc, spec in zip(pcs, specs):
        try:
            kernel_source("k", spec)
        except NotImplementedError:
            continue
        kept.append((pc, spec))
    if len(kept) < len(pcs):
        try:
            return dict(zip([pc for pc, _ in kept],
                            cgen.build_kernels([spec for _, spec in kept])))
        except Exception as exc:     # noqa: BLE001
            first_error = exc
    return _fall_back(cgen, first_error)


def _fall_back(cgen, exc):
    """{} (numpy thunks) after the module failed to build: no runtime, no
    compiler, or a generator bug (warned once); a generator bug must not stop
    the function from running."""
    if isinstance(exc, NotImplementedError):
        return {}
    if isinstance(exc, cgen.CompileError) and not cgen.have_compiler():
        return {}                    # no usable compiler: have_compiler() warned once
    if not _warned:
        _warned.append(exc)
        warnings.warn(f"vmc: generated elementwise C failed ({type(exc).__name__}: "
                      f"{exc}); running those kernels with numpy", stacklevel=3)
    return {}
