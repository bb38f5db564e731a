"""The demo: a two-layer MLP learns to classify points of a synthetic
5-class spiral, trained with SGD by one compiled step function."""
from __future__ import annotations

import time

import numpy as np

import vmc
import vmc.tensor as vt


def make_spirals(n_per_class=600, n_classes=5, noise=0.25, seed=0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(n_classes):
        r = np.linspace(0.1, 1.0, n_per_class)
        t = np.linspace(c * 2 * np.pi / n_classes, c * 2 * np.pi / n_classes + 4.0,
                        n_per_class) + rng.normal(0, noise, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(n_per_class, c))
    x = np.concatenate(xs).astype(np.float64)
    y = np.concatenate(ys).astype(np.int64)
    perm = rng.permutation(len(y))
    return x[perm], y[perm]


def build(n_in, n_hidden, n_out, lr, profile, seed=1):
    rng = np.random.default_rng(seed)
    x, y = vt.dmatrix("x"), vt.lvector("y")
    w1 = vmc.shared(rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_hidden)), name="w1")
    b1 = vmc.shared(np.zeros(n_hidden), name="b1")
    w2 = vmc.shared(rng.normal(0, 1 / np.sqrt(n_hidden), (n_hidden, n_out)), name="w2")
    b2 = vmc.shared(np.zeros(n_out), name="b2")
    h = vt.tanh(vt.dot(x, w1) + b1)
    logp = vt.log_softmax(vt.dot(h, w2) + b2)
    loss = -vt.mean(logp[vt.arange(y.shape[0]), y])
    acc = vt.mean(vt.eq(vt.argmax(logp, axis=1), y))
    params = [w1, b1, w2, b2]
    grads = vmc.grad(loss, params)
    step = vmc.function([x, y], [loss, acc], name="train_step", profile=profile,
                        updates=[(p, p - lr * g) for p, g in zip(params, grads)])
    evaluate = vmc.function([x, y], [loss, acc], name="evaluate")
    return step, evaluate


def run_demo(epochs=20, batch=32, hidden=64, lr=0.5, profile=True):
    x, y = make_spirals()
    n_train = int(0.8 * len(y))
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    t0 = time.perf_counter()
    step, evaluate = build(2, hidden, 5, lr, profile)
    print(f"vmc demo: MLP 2-{hidden}-5 on a 5-class spiral ({n_train} train / "
          f"{len(yte)} test points), batch {batch}, SGD lr {lr}")
    print(f"compiled in {time.perf_counter() - t0:.2f} s "
          f"({step.program.n_instr} instructions in the training step)")
    steps, train_time = 0, 0.0
    for epoch in range(1, epochs + 1):
        t = time.perf_counter()
        losses = []
        for i in range(0, n_train - batch + 1, batch):
            loss, _ = step(xtr[i:i + batch], ytr[i:i + batch])
            losses.append(float(loss))
            steps += 1
        train_time += time.perf_counter() - t
        te_loss, te_acc = evaluate(xte, yte)
        tr_loss, tr_acc = evaluate(xtr, ytr)
        print(f"epoch {epoch:2d}  train loss {tr_loss:.4f} acc {tr_acc:.3f}  "
              f"test loss {te_loss:.4f} acc {te_acc:.3f}")
    print(f"{steps} steps in {train_time:.3f} s: {steps / train_time:.0f} steps/s")
    if profile and step.profile is not None:
        print()
        step.profile.summary()
    return float(te_acc)
