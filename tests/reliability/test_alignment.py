"""Item 1 of issue 20: misaligned arrays (data one byte off an aligned address)
given to the C thunks that read raw pointers: BLAS (dot, gemm, gemv, ger),
softmax and cross-entropy, generated elementwise kernels, DimShuffle views.
Each must give numpy's answer, and never crash, for every operand misaligned
in turn, as input and as the buffer of an in-place update."""
import pytest

from probe_helpers import probe

DTYPES = ["float64", "float32"]

BLAS = '''
dt = np.dtype(DTYPE)
rng = np.random.default_rng(0)
M = lambda *s: rng.standard_normal(s).astype(dt)
z, x, y = vt.matrix('z', dtype=DTYPE), vt.matrix('x', dtype=DTYPE), vt.matrix('y', dtype=DTYPE)
u, v = vt.vector('u', dtype=DTYPE), vt.vector('v', dtype=DTYPE)
cases = [
    ("gemm", [z, x, y], z * 0.5 + 2 * vt.dot(x, y), [M(3, 2), M(3, 5), M(5, 2)],
     lambda z, x, y: z * 0.5 + 2 * x @ y),
    ("gemm x.T", [z, x, y], z * 0.5 + 2 * vt.dot(x.T, y), [M(3, 2), M(5, 3), M(5, 2)],
     lambda z, x, y: z * 0.5 + 2 * x.T @ y),
    ("dot mm", [x, y], vt.dot(x, y), [M(3, 5), M(5, 2)], lambda x, y: x @ y),
    ("gemv", [u, x, v], u * 0.5 + 2 * vt.dot(x, v), [M(3), M(3, 5), M(5)],
     lambda u, x, v: u * 0.5 + 2 * x @ v),
    ("dot mv", [x, v], vt.dot(x, v), [M(3, 5), M(5)], lambda x, v: x @ v),
    ("dot vm", [v, x], vt.dot(v, x), [M(5), M(5, 3)], lambda v, x: v @ x),
    ("dot vv", [u, v], vt.dot(u, v), [M(5), M(5)], lambda u, v: u @ v),
    ("ger", [z, u, v], z + 2 * vt.outer(u, v), [M(3, 5), M(3), M(5)],
     lambda z, u, v: z + 2 * np.outer(u, v)),
]
for name, ins, out, vals, ref in cases:
    f = vmc.function(ins, out)
    want = ref(*vals)
    for k in range(len(vals)):
        args = list(vals)
        args[k] = misaligned(vals[k])
        close(f(*args), want, f"{name}, input {k} misaligned")
        args[k] = misaligned(vals[k].T).T if vals[k].ndim == 2 else args[k]
        close(f(*args), want, f"{name}, input {k} misaligned, transposed")
    close(f(*[misaligned(a) for a in vals]), want, f"{name}, all misaligned")
# scan hands each row of a sequence to its body as a view: misaligned here
rows, _ = vmc.scan(lambda r, acc, m: acc + vt.dot(m, r), sequences=[x],
                   outputs_info=[vt.zeros((3,), dtype=DTYPE)], non_sequences=[x])
f = vmc.function([x], rows[-1])
a = M(3, 3)
close(f(misaligned(a)), sum(a @ r for r in a), "scan of dots, misaligned sequence")
print("ok")
'''

UPDATES = '''
dt = np.dtype(DTYPE)
rng = np.random.default_rng(1)
M = lambda *s: rng.standard_normal(s).astype(dt)
x, y = vt.matrix('x', dtype=DTYPE), vt.matrix('y', dtype=DTYPE)
u, v = vt.vector('u', dtype=DTYPE), vt.vector('v', dtype=DTYPE)
W0, b0, xv, yv = M(3, 4), M(3), M(2, 3), M(2, 4)
W, b = vmc.shared(W0.copy(), name='W'), vmc.shared(b0.copy(), name='b')
cases = [
    ("gemm in place", W, W0, [x, y], [xv, yv], W - 0.1 * vt.dot(x.T, y),
     lambda: W0 - dt.type(0.1) * xv.T @ yv),
    ("ger in place", W, W0, [u, v], [xv[0], yv[0]], W + 0.5 * vt.outer(u, v),
     lambda: W0 + dt.type(0.5) * np.outer(xv[0], yv[0])),
    ("gemv in place", b, b0, [x, v], [xv.T, yv[0, :2]], b - 0.1 * vt.dot(x, v),
     lambda: b0 - dt.type(0.1) * xv.T @ yv[0, :2]),
    ("elemwise in place", b, b0, [u], [xv[0]], b * 0.9 + u,
     lambda: b0 * dt.type(0.9) + xv[0]),
]
for name, s, s0, ins, vals, new, ref in cases:
    f = vmc.function(ins, [], updates=[(s, new)])
    s.set_value(misaligned(s0), borrow=True)
    f(*vals)
    close(s.get_value(), ref(), name + ", misaligned shared value")
    s.set_value(s0.copy())
    f(*[misaligned(a) for a in vals])
    close(s.get_value(), ref(), name + ", misaligned inputs")
print("ok")
'''

NNET_AND_KERNELS = '''
import scipy.special as sps
dt = np.dtype(DTYPE)
rng = np.random.default_rng(2)
X = rng.standard_normal((4, 5)).astype(dt)
T = np.array([0, 3, 1, 4], np.int64)
x = vt.matrix('x', dtype=DTYPE)
t = vt.vector('t', dtype='int64')
sm = vmc.function([x], vt.softmax(x))
lsm = vmc.function([x], vt.log_softmax(x))
cost = vt.mean(vt.categorical_crossentropy(vt.softmax(x), t))
xent = vmc.function([x, t], [cost, vmc.grad(cost, x)])
fused = vmc.function([x], vt.tanh(x) * 3.25 + vt.exp(x))
inner = vmc.function([x], x.T * 2 + 1)
X64 = X.astype(np.float64)
want_cost = -sps.log_softmax(X64, axis=1)[np.arange(4), T].mean()
want_grad = (sps.softmax(X64, axis=1) - np.eye(5)[T]) / 4
for name, a in [("misaligned", misaligned(X)), ("misaligned, transposed", misaligned(X.T).T)]:
    close(sm(a), sps.softmax(X64, axis=1), "softmax, " + name, rtol=1e-5)
    close(lsm(a), sps.log_softmax(X64, axis=1), "log_softmax, " + name, rtol=1e-5)
    c, g = xent(a, T)
    close(c, want_cost, "crossentropy, " + name, rtol=1e-5)
    close(g, want_grad, "crossentropy gradient, " + name, rtol=1e-5)
    c, g = xent(X, misaligned(T))
    close(g, want_grad, "crossentropy gradient, misaligned targets", rtol=1e-5)
    close(fused(a), np.tanh(X) * dt.type(3.25) + np.exp(X), "fused kernel, " + name)
    close(inner(a), X.T * 2 + 1, "dimshuffle, " + name)
print("ok")
'''


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", [BLAS, UPDATES, NNET_AND_KERNELS],
                         ids=["blas", "inplace_updates", "nnet_and_kernels"])
def test_misaligned_operands(code, dtype, shared_compiledir):
    assert probe(f"DTYPE = {dtype!r}\n" + code, shared_compiledir).strip().endswith("ok")
