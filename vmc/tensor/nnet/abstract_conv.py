"""2-d convolution with Theano's semantics (``theano.tensor.nnet.abstract_conv``).

Three ops, each with type, shape and gradient rules; the CPU runs them as
im2col + BLAS gemm (``vmc/thunks/conv.py``), a GPU driver registers its own.

- ``AbstractConv2d``: ``(input (N, C, H, W), filters (F, C / groups, kh, kw))
  -> (N, F, oh, ow)``;
- ``AbstractConv2d_gradInputs``: ``(filters, output grad, [H, W]) -> input grad``;
- ``AbstractConv2d_gradWeights``: ``(input, output grad, [kh, kw]) -> filter grad``.

``filter_flip=True`` (the default) is a true convolution: the filters are
flipped in both spatial dims; False is a cross-correlation. ``border_mode`` is
'valid' (no padding), 'full' (``dilated kernel - 1``), 'half'
(``dilated kernel // 2``), an int or a pair of ints. Output rows are
``(H + 2 pad - dilated kernel) // stride + 1``, with ``dilated kernel =
(kh - 1) * dilation + 1``.

All three are bilinear, so each pullback and pushforward is another of the
three (Theano's rules).
"""
from __future__ import annotations

from vmc.graph.basic import Apply, Constant, Op
from vmc.graph.type import TensorType

from ..basic import as_tensor_variable
from ..elemwise import cast

__all__ = ["conv2d", "conv2d_grad_wrt_inputs", "conv2d_grad_wrt_weights",
           "get_conv_output_shape", "AbstractConv2d", "AbstractConv2d_gradInputs",
           "AbstractConv2d_gradWeights"]


def _pair(v, what):
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"conv2d: {what} must be an int or a pair of ints, got {v}")
    return v


def _border(mode):
    if isinstance(mode, str):
        if mode not in ("valid", "full", "half"):
            raise ValueError(f"conv2d: border_mode must be 'valid', 'full', 'half', an int "
                             f"or a pair of ints, got {mode!r}")
        return mode
    pads = _pair(mode, "border_mode")
    if min(pads) < 0:
        raise ValueError(f"conv2d: border_mode padding must be >= 0, got {pads}")
    return "valid" if pads == (0, 0) else pads


def border_pads(border_mode, kshape, dilation):
    """The zero padding ``(ph, pw)`` for filters of spatial shape ``kshape``."""
    dk = [(k - 1) * d + 1 for k, d in zip(kshape, dilation)]
    if border_mode == "valid":
        return (0, 0)
    if border_mode == "full":
        return (dk[0] - 1, dk[1] - 1)
    if border_mode == "half":
        return (dk[0] // 2, dk[1] // 2)
    return tuple(border_mode)


def _out_len(i, k, s, d, p):
    if i is None or k is None:
        return None
    if not isinstance(p, int):
        p = {"full": (k - 1) * d, "half": ((k - 1) * d + 1) // 2, "valid": 0}[p]
    return (i + 2 * p - ((k - 1) * d + 1)) // s + 1


def get_conv_output_shape(image_shape, kernel_shape, border_mode, subsample,
                          filter_dilation=(1, 1)):
    """Theano's helper: the output shape (None where unknown)."""
    bm = _border(border_mode)
    pads = bm if isinstance(bm, tuple) else (bm, bm)
    return (image_shape[0], kernel_shape[0]) + tuple(
        _out_len(image_shape[2 + k], kernel_shape[2 + k], subsample[k], filter_dilation[k],
                 pads[k]) for k in range(2))


class _Conv(Op):
    """The parameters the three ops share."""
    __props__ = ("border_mode", "subsample", "filter_flip", "filter_dilation", "num_groups")

    def __init__(self, imshp=None, kshp=None, border_mode="valid", subsample=(1, 1),
                 filter_flip=True, filter_dilation=(1, 1), num_groups=1):
        # imshp and kshp come first, as in Theano (Lasagne builds the ops
        # itself): hints of the image and filter shapes, which the shapes of
        # the inputs give here.
        self.border_mode = _border(border_mode)
        self.subsample = _pair(subsample, "subsample")
        self.filter_dilation = _pair(filter_dilation, "filter_dilation")
        self.filter_flip = bool(filter_flip)
        self.num_groups = int(num_groups)
        if min(self.subsample) < 1 or min(self.filter_dilation) < 1 or self.num_groups < 1:
            raise ValueError(f"conv2d: subsample, filter_dilation and num_groups must be "
                             f">= 1, got {self.subsample}, {self.filter_dilation}, "
                             f"{self.num_groups}")

    def _params(self):
        return dict(border_mode=self.border_mode, subsample=self.subsample,
                    filter_flip=self.filter_flip, filter_dilation=self.filter_dilation,
                    num_groups=self.num_groups)

    def _tensor4(self, v, what):
        v = as_tensor_variable(v)
        if v.type.ndim != 4:
            raise TypeError(f"{type(self).__name__}: {what} must be 4-d, got {v.type}")
        return v

    def _dtype(self, *vs):
        dts = {v.type.dtype for v in vs}
        if len(dts) != 1 or not next(iter(dts)).startswith("float"):
            raise TypeError(f"{type(self).__name__}: inputs must be floats of one dtype, got "
                            f"{' and '.join(str(v.type) for v in vs)}")
        return dts.pop()

    def _shape_vector(self, shape, what):
        shape = as_tensor_variable(shape)
        if shape.type.ndim != 1 or not shape.type.dtype.startswith(("int", "uint")):
            raise TypeError(f"{type(self).__name__}: {what} must be a vector of 2 ints, "
                            f"got {shape.type}")
        return cast(shape, "int64")

    def _out_spatial(self, h, w, kh, kw):
        pads = self.border_mode if isinstance(self.border_mode, tuple) else \
            (self.border_mode, self.border_mode)
        return tuple(_out_len(i, k, s, d, p) for i, k, s, d, p in
                     zip((h, w), (kh, kw), self.subsample, self.filter_dilation, pads))

    def _spatial_value(self, shape):
        """The static ``[a, b]`` of a shape input, or (None, None)."""
        if isinstance(shape, Constant):
            return tuple(int(a) for a in shape.data)
        return (None, None)


class AbstractConv2d(_Conv):
    def make_node(self, img, kern):
        img, kern = self._tensor4(img, "the input"), self._tensor4(kern, "the filters")
        dtype = self._dtype(img, kern)
        n, c, h, w = img.type.shape
        f, cg, kh, kw = kern.type.shape
        if c is not None and cg is not None and c != cg * self.num_groups:
            raise ValueError(f"conv2d: the input has {c} channels but the filters take "
                             f"{cg} x {self.num_groups} groups")
        oh, ow = self._out_spatial(h, w, kh, kw)
        out = TensorType(dtype, (None if n == 1 else n, None if f == 1 else f,
                                 None if oh == 1 else oh, None if ow == 1 else ow))
        return Apply(self, [img, kern], [out.make_variable()])

    def infer_shape(self, node, shapes):
        (n, _, h, w), (f, _, kh, kw) = shapes
        return [(n, f) + _symbolic_out(self, h, w, kh, kw)]

    def pullback(self, inputs, outputs, grads):
        img, kern = inputs
        (gz,) = grads
        p = self._params()
        gi = AbstractConv2d_gradInputs(**p)(kern, gz, img.shape[2:])
        gk = AbstractConv2d_gradWeights(**p)(img, gz, kern.shape[2:])
        return [gi, gk]

    def pushforward(self, inputs, outputs, tangents):
        img, kern = inputs
        ti, tk = tangents
        terms = ([self(ti, kern)] if ti is not None else []) + \
                ([self(img, tk)] if tk is not None else [])
        return [_add(terms)]


class AbstractConv2d_gradInputs(_Conv):      # noqa: N801  (Theano's name)
    def make_node(self, kern, topgrad, shape):
        kern = self._tensor4(kern, "the filters")
        topgrad = self._tensor4(topgrad, "the output gradient")
        dtype = self._dtype(kern, topgrad)
        shape = self._shape_vector(shape, "the input's spatial shape")
        h, w = self._spatial_value(shape)
        n, c = topgrad.type.shape[0], kern.type.shape[1]
        c = None if c is None else c * self.num_groups
        out = TensorType(dtype, (None if n == 1 else n, None if c == 1 else c,
                                 None if h == 1 else h, None if w == 1 else w))
        return Apply(self, [kern, topgrad, shape], [out.make_variable()])

    def infer_shape(self, node, shapes):
        from ..subtensor import getitem
        kern_shape, top_shape, _ = shapes
        shape = node.inputs[2]
        return [(top_shape[0], kern_shape[1] * self.num_groups, getitem(shape, 0),
                 getitem(shape, 1))]

    def pullback(self, inputs, outputs, grads):
        kern, top, shape = inputs
        (g,) = grads
        p = self._params()
        gk = AbstractConv2d_gradWeights(**p)(g, top, kern.shape[2:])
        gt = AbstractConv2d(**p)(g, kern)
        return [gk, gt, None]

    def pushforward(self, inputs, outputs, tangents):
        kern, top, shape = inputs
        tk, tt = tangents[:2]
        terms = ([self(tk, top, shape)] if tk is not None else []) + \
                ([self(kern, tt, shape)] if tt is not None else [])
        return [_add(terms)]


class AbstractConv2d_gradWeights(_Conv):     # noqa: N801  (Theano's name)
    def make_node(self, img, topgrad, shape):
        img = self._tensor4(img, "the input")
        topgrad = self._tensor4(topgrad, "the output gradient")
        dtype = self._dtype(img, topgrad)
        shape = self._shape_vector(shape, "the filters' spatial shape")
        kh, kw = self._spatial_value(shape)
        f, c = topgrad.type.shape[1], img.type.shape[1]
        c = None if c is None else c // self.num_groups
        out = TensorType(dtype, (None if f == 1 else f, None if c == 1 else c,
                                 None if kh == 1 else kh, None if kw == 1 else kw))
        return Apply(self, [img, topgrad, shape], [out.make_variable()])

    def infer_shape(self, node, shapes):
        from ..subtensor import getitem
        img_shape, top_shape, _ = shapes
        shape = node.inputs[2]
        return [(top_shape[1], img_shape[1] // self.num_groups, getitem(shape, 0),
                 getitem(shape, 1))]

    def pullback(self, inputs, outputs, grads):
        img, top, shape = inputs
        (g,) = grads
        p = self._params()
        gi = AbstractConv2d_gradInputs(**p)(g, top, img.shape[2:])
        gt = AbstractConv2d(**p)(img, g)
        return [gi, gt, None]

    def pushforward(self, inputs, outputs, tangents):
        img, top, shape = inputs
        ti, tt = tangents[:2]
        terms = ([self(ti, top, shape)] if ti is not None else []) + \
                ([self(img, tt, shape)] if tt is not None else [])
        return [_add(terms)]


def _add(terms):
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _symbolic_out(op, h, w, kh, kw):
    """Output rows and columns as graph expressions of the input dims."""
    out = []
    for i, k, s, d, bm in zip((h, w), (kh, kw), op.subsample, op.filter_dilation,
                              op.border_mode if isinstance(op.border_mode, tuple)
                              else (op.border_mode, op.border_mode)):
        dk = (k - 1) * d + 1
        pad2 = {"valid": 0, "full": 2 * (dk - 1), "half": 2 * (dk // 2)}.get(bm) \
            if isinstance(bm, str) else 2 * bm
        out.append((i + pad2 - dk) // s + 1)
    return tuple(out)


def _static_shape(shape, ndim, what):
    if shape is None:
        return (None,) * ndim
    shape = tuple(shape)
    if len(shape) != ndim:
        raise ValueError(f"conv2d: {what} must have {ndim} entries, got {shape}")
    return tuple(s if isinstance(s, int) or s is None else None for s in shape)


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip=True, image_shape=None, filter_dilation=(1, 1),
           num_groups=1, **kwargs):
    """Theano's ``conv2d``: a batch of images (N, C, H, W) convolved with
    filters (F, C / num_groups, kh, kw). ``input_shape`` and ``filter_shape``
    (Theano's hints; ``image_shape`` is the old name) only check the inputs."""
    if kwargs:
        raise TypeError(f"conv2d: unexpected arguments {sorted(kwargs)}")
    input, filters = as_tensor_variable(input), as_tensor_variable(filters)
    for given, v, what in ((input_shape or image_shape, input, "input_shape"),
                           (filter_shape, filters, "filter_shape")):
        for a, b in zip(_static_shape(given, 4, what), v.type.shape):
            if a is not None and b is not None and a != b:
                raise ValueError(f"conv2d: {what} {tuple(given)} does not match {v.type}")
    op = AbstractConv2d(None, None, border_mode, subsample, filter_flip, filter_dilation,
                        num_groups)
    return op(input, filters)


def _spatial(shape, what):
    shape = list(shape) if not hasattr(shape, "type") else None
    if shape is None:
        raise TypeError(f"conv2d: {what} must be a tuple or list of 4 entries")
    if len(shape) != 4:
        raise ValueError(f"conv2d: {what} must have 4 entries, got {shape}")
    return [as_tensor_variable(s) if not isinstance(s, int) else s for s in shape[2:]]


def conv2d_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None,
                           border_mode="valid", subsample=(1, 1), filter_flip=True,
                           filter_dilation=(1, 1), num_groups=1):
    """The gradient of ``conv2d`` w.r.t. its input (a transposed convolution):
    ``input_shape`` gives the (N, C, H, W) of that input."""
    from ..shape import stack
    hw = _spatial(input_shape, "input_shape")
    shape = as_tensor_variable(hw if all(isinstance(s, int) for s in hw)
                               else stack([as_tensor_variable(s) for s in hw]))
    op = AbstractConv2d_gradInputs(None, None, border_mode, subsample, filter_flip,
                                   filter_dilation, num_groups)
    return op(filters, output_grad, shape)


def conv2d_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None,
                            border_mode="valid", subsample=(1, 1), filter_flip=True,
                            filter_dilation=(1, 1), num_groups=1):
    """The gradient of ``conv2d`` w.r.t. its filters, of shape ``filter_shape``."""
    from ..shape import stack
    hw = _spatial(filter_shape, "filter_shape")
    shape = as_tensor_variable(hw if all(isinstance(s, int) for s in hw)
                               else stack([as_tensor_variable(s) for s in hw]))
    op = AbstractConv2d_gradWeights(None, None, border_mode, subsample, filter_flip,
                                    filter_dilation, num_groups)
    return op(input, output_grad, shape)
