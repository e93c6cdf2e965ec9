#!/usr/bin/env python3
"""Fits the polynomials of codegen/kernels_math.c's GELU.

GELU(x) = x Phi(x), Phi(x) = 1 - h for x > 0 and h for x <= 0, with
h = 0.5 erfc(t), t = |x| / sqrt(2). erfc(t) = exp(-t^2) erfcx(t), and
erfcx(t) = u G(u) with u = 1 / (1 + p t) is smooth on u in (0, 1] (erfcx
falls like 1 / (sqrt(pi) t)), so a polynomial G in u fits it everywhere.
This fits G (times 0.5) by iteratively reweighted least squares towards
the minimax relative error on t in [0, 11.5] (x up to 16.3; beyond, exp(-t^2)
is below f32's range) and prints the coefficients, highest power first, as
kernels_math.c lists them, with the relative error of the fit:

    python3 scripts/fit_gelu.py              # f32: degree 8, p = 0.3
    python3 scripts/fit_gelu.py --degree 6 --p 0.375   # 16-bit outputs
Needs numpy.
"""
import argparse
import math

import numpy as np


def fit(p, degree, tmax=11.5, nodes=6000, rounds=200):
    u0 = 1 / (1 + p * tmax)
    k = np.arange(nodes)
    u = (u0 + 1) / 2 + (1 - u0) / 2 * np.cos(np.pi * (k + 0.5) / nodes)
    t = (1 / u - 1) / p
    y = np.array([math.erfc(v) * math.exp(v * v) for v in t]) / u  # G(u)
    w = np.ones(nodes)
    for _ in range(rounds):
        v = np.vander(u, degree + 1)
        c, *_ = np.linalg.lstsq((v / y[:, None]) * np.sqrt(w)[:, None], np.sqrt(w), rcond=None)
        err = np.abs(v @ c / y - 1)
        w = w * err
        w /= w.sum()
    return 0.5 * c, err.max()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--degree", type=int, default=8)
    ap.add_argument("--p", type=float, default=0.3)
    a = ap.parse_args()
    c, err = fit(a.p, a.degree)
    print(f"p = {a.p}, degree {a.degree}: max relative error {err:.2e}")
    print(",\n".join(f"{v:.17g}" for v in c))


if __name__ == "__main__":
    main()
