"""A small layer library written as Lasagne writes its layers, against
Theano's names with only the import renamed (``import vmc as theano``):
dense, conv, pool, dropout and recurrent layers, ``get_output``,
``get_all_params`` through ``theano.gof.graph.inputs``, and updates
(nesterov momentum, adam) whose state copies each parameter's broadcast
pattern."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

import vmc as theano
import vmc.tensor as T
from vmc.sandbox.rng_mrg import MRG_RandomStreams as RandomStreams
from vmc.tensor.signal.pool import pool_2d

_rng = np.random.RandomState(7)


def floatX(arr):
    return np.asarray(arr, dtype=theano.config.floatX)


def glorot_uniform(shape):
    n1, n2 = (shape[0], shape[1]) if len(shape) == 2 else \
        (shape[1] * np.prod(shape[2:]), shape[0] * np.prod(shape[2:]))
    bound = np.sqrt(6.0 / (n1 + n2))
    return floatX(_rng.uniform(-bound, bound, size=shape))


def constant(value=0.0):
    return lambda shape: floatX(np.full(shape, value))


def create_param(spec, shape, name=None):
    """A shared variable from an array, a callable or a Theano expression;
    dims of length 1 are broadcastable, as in Lasagne."""
    shape = tuple(shape)
    if isinstance(spec, theano.Variable):
        if spec.ndim != len(shape):
            raise ValueError("parameter variable has %d dims, expected %d"
                             % (spec.ndim, len(shape)))
        return spec
    arr = spec(shape) if callable(spec) else floatX(spec)
    bcast = tuple(s == 1 for s in shape)
    return theano.shared(arr, name=name, broadcastable=bcast)


class Layer(object):
    def __init__(self, incoming, name=None):
        self.input_layer = incoming
        self.input_shape = incoming.output_shape
        self.name = name
        self.params = OrderedDict()

    @property
    def output_shape(self):
        return self.get_output_shape_for(self.input_shape)

    def add_param(self, spec, shape, name=None, **tags):
        param = create_param(spec, shape, name)
        tags["trainable"] = tags.get("trainable", True)
        self.params[param] = set(tag for tag, value in tags.items() if value)
        return param

    def get_params(self, trainable=None):
        return [p for p, tags in self.params.items()
                if trainable is None or ("trainable" in tags) == trainable]

    def get_output_shape_for(self, input_shape):
        return input_shape


class InputLayer(object):
    def __init__(self, shape, input_var=None, name=None):
        self.shape = tuple(shape)
        if input_var is None:
            input_var = T.TensorType(theano.config.floatX, [False] * len(shape))(name)
        elif input_var.ndim != len(shape):
            raise ValueError("input_var has %d dims, shape has %d" % (input_var.ndim, len(shape)))
        self.input_var = input_var
        self.output_shape = self.shape
        self.params = OrderedDict()


class DenseLayer(Layer):
    def __init__(self, incoming, num_units, W=glorot_uniform, b=constant(0.0),
                 nonlinearity=T.tanh, **kwargs):
        super(DenseLayer, self).__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearity or (lambda x: x)
        self.num_units = num_units
        num_inputs = int(np.prod(self.input_shape[1:]))
        self.W = self.add_param(W, (num_inputs, num_units), name="W")
        self.b = self.add_param(b, (num_units,), name="b", regularizable=False) \
            if b is not None else None

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.num_units)

    def get_output_for(self, input, **kwargs):
        if input.ndim > 2:
            input = input.flatten(2)
        activation = T.dot(input, self.W)
        if self.b is not None:
            activation = activation + self.b.dimshuffle("x", 0)
        return self.nonlinearity(activation)


class Conv2DLayer(Layer):
    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), pad=0,
                 W=glorot_uniform, b=constant(0.0), nonlinearity=T.nnet.relu,
                 flip_filters=True, **kwargs):
        super(Conv2DLayer, self).__init__(incoming, **kwargs)
        self.num_filters, self.filter_size = num_filters, tuple(filter_size)
        self.stride, self.pad, self.flip_filters = tuple(stride), pad, flip_filters
        self.nonlinearity = nonlinearity
        self.W = self.add_param(W, (num_filters, self.input_shape[1]) + self.filter_size,
                                name="W")
        self.b = self.add_param(b, (num_filters,), name="b", regularizable=False)

    def get_output_shape_for(self, input_shape):
        pad = self.pad if self.pad != "same" else self.filter_size[0] // 2
        sizes = [None if s is None else (s + 2 * pad - f) // st + 1
                 for s, f, st in zip(input_shape[2:], self.filter_size, self.stride)]
        return (input_shape[0], self.num_filters) + tuple(sizes)

    def get_output_for(self, input, **kwargs):
        border_mode = "half" if self.pad == "same" else self.pad
        conved = T.nnet.conv2d(input, self.W, self.input_shape, self.W.get_value().shape,
                               subsample=self.stride, border_mode=border_mode,
                               filter_flip=self.flip_filters)
        return self.nonlinearity(conved + self.b.dimshuffle("x", 0, "x", "x"))


class MaxPool2DLayer(Layer):
    def __init__(self, incoming, pool_size, **kwargs):
        super(MaxPool2DLayer, self).__init__(incoming, **kwargs)
        self.pool_size = (pool_size, pool_size) if np.isscalar(pool_size) else pool_size

    def get_output_shape_for(self, input_shape):
        return tuple(input_shape[:2]) + tuple(
            None if s is None else s // p for s, p in zip(input_shape[2:], self.pool_size))

    def get_output_for(self, input, **kwargs):
        return pool_2d(input, ws=self.pool_size, stride=self.pool_size, ignore_border=True,
                       pad=(0, 0), mode="max")


class DropoutLayer(Layer):
    def __init__(self, incoming, p=0.5, rescale=True, shared_axes=(), **kwargs):
        super(DropoutLayer, self).__init__(incoming, **kwargs)
        self._srng = RandomStreams(_rng.randint(1, 2147462579))
        self.p, self.rescale, self.shared_axes = p, rescale, tuple(shared_axes)

    def get_output_for(self, input, deterministic=False, **kwargs):
        if deterministic or self.p == 0:
            return input
        one = T.constant(1)
        retain_prob = one - self.p
        if self.rescale:
            input /= retain_prob
        mask_shape = self.input_shape
        if any(s is None for s in mask_shape):
            mask_shape = input.shape
        if self.shared_axes:
            shared_axes = tuple(a if a >= 0 else a + input.ndim for a in self.shared_axes)
            mask_shape = tuple(1 if a in shared_axes else s for a, s in enumerate(mask_shape))
        mask = self._srng.binomial(mask_shape, p=retain_prob, dtype=input.dtype)
        if self.shared_axes:
            bcast = tuple(bool(s == 1) for s in mask_shape)
            mask = T.patternbroadcast(mask, bcast)
        return input * mask


class RecurrentLayer(Layer):
    """A vanilla RNN over (batch, time, features), returning all hidden states."""

    def __init__(self, incoming, num_units, W_in_to_hid=glorot_uniform,
                 W_hid_to_hid=glorot_uniform, b=constant(0.0), nonlinearity=T.tanh,
                 hid_init=constant(0.0), learn_init=False, grad_clipping=0, **kwargs):
        super(RecurrentLayer, self).__init__(incoming, **kwargs)
        self.num_units, self.nonlinearity = num_units, nonlinearity
        self.grad_clipping = grad_clipping
        num_inputs = int(np.prod(self.input_shape[2:]))
        self.W_in_to_hid = self.add_param(W_in_to_hid, (num_inputs, num_units), name="W_in")
        self.W_hid_to_hid = self.add_param(W_hid_to_hid, (num_units, num_units), name="W_hid")
        self.b = self.add_param(b, (num_units,), name="b")
        self.hid_init = self.add_param(hid_init, (1, num_units), name="hid_init",
                                       trainable=learn_init)

    def get_output_shape_for(self, input_shape):
        return input_shape[0], input_shape[1], self.num_units

    def get_output_for(self, input, **kwargs):
        input = input.dimshuffle(1, 0, *range(2, input.ndim))
        seq_len, num_batch = input.shape[0], input.shape[1]
        # the input-to-hidden product for every step at once: a 3-d by 2-d dot
        input = T.dot(input, self.W_in_to_hid) + self.b
        W_hid = self.W_hid_to_hid

        def step(input_n, hid_previous, *args):
            hid_pre = T.dot(hid_previous, W_hid) + input_n
            if self.grad_clipping:
                hid_pre = theano.gradient.grad_clip(hid_pre, -self.grad_clipping,
                                                    self.grad_clipping)
            return self.nonlinearity(hid_pre)

        hid_init = T.dot(T.ones((num_batch, 1)), self.hid_init)
        hid_out = theano.scan(fn=step, sequences=[input], outputs_info=[hid_init],
                              non_sequences=[W_hid], strict=True)[0]
        return hid_out.dimshuffle(1, 0, 2)


def get_all_layers(layer):
    layers, todo = [], [layer]
    while todo:
        lay = todo.pop()
        if lay not in layers:
            layers.insert(0, lay)
            if hasattr(lay, "input_layer"):
                todo.append(lay.input_layer)
    return layers


def get_output(layer, inputs=None, **kwargs):
    outputs = {}
    for lay in get_all_layers(layer):
        if isinstance(lay, InputLayer):
            outputs[lay] = lay.input_var if inputs is None else inputs
        else:
            outputs[lay] = lay.get_output_for(outputs[lay.input_layer], **kwargs)
    return outputs[layer]


def get_all_params(layer, **tags):
    params = []
    for lay in get_all_layers(layer):
        for p in (lay.get_params(**tags) if isinstance(lay, Layer) else []):
            if p not in params:
                params.append(p)
    return params


def collect_shared_vars(expressions):
    """Lasagne's utils.collect_shared_vars: the shared variables an expression reads."""
    if isinstance(expressions, theano.Variable):
        expressions = [expressions]
    return [v for v in theano.gof.graph.inputs(reversed(expressions))
            if isinstance(v, theano.compile.SharedVariable)]


def get_or_compute_grads(loss_or_grads, params):
    if any(not isinstance(p, theano.compile.SharedVariable) for p in params):
        raise ValueError("params must contain shared variables only")
    if isinstance(loss_or_grads, list):
        return loss_or_grads
    return theano.grad(loss_or_grads, params)


def nesterov_momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        updates[param] = param - learning_rate * grad
    for param in params:
        value = param.get_value(borrow=True)
        velocity = theano.shared(np.zeros(value.shape, dtype=value.dtype),
                                 broadcastable=param.broadcastable)
        x = momentum * velocity + updates[param] - param
        updates[velocity] = x
        updates[param] = momentum * x + updates[param]
    return updates


def adam(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    all_grads = get_or_compute_grads(loss_or_grads, params)
    t_prev = theano.shared(floatX(0.))
    updates = OrderedDict()
    one = T.constant(1)
    t = t_prev + 1
    a_t = learning_rate * T.sqrt(one - beta2 ** t) / (one - beta1 ** t)
    for param, g_t in zip(params, all_grads):
        value = param.get_value(borrow=True)
        m_prev = theano.shared(np.zeros(value.shape, dtype=value.dtype),
                               broadcastable=param.broadcastable)
        v_prev = theano.shared(np.zeros(value.shape, dtype=value.dtype),
                               broadcastable=param.broadcastable)
        m_t = beta1 * m_prev + (one - beta1) * g_t
        v_t = beta2 * v_prev + (one - beta2) * g_t ** 2
        step = a_t * m_t / (T.sqrt(v_t) + epsilon)
        updates[m_prev] = m_t
        updates[v_prev] = v_t
        updates[param] = param - step
    updates[t_prev] = t
    return updates


def categorical_crossentropy(predictions, targets):
    return T.nnet.categorical_crossentropy(predictions, targets)
