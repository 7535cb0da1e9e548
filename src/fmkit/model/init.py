"""Parameter initialisation by SageMaker's ``*_init_method`` rules, seeded, in numpy.

The draws are those of torch's CPU generator seeded with the same number (``MT19937``
with the reference seeding, 24-bit uniforms, Box-Muller over blocks of 16 with the float32
Cephes log and sincos polynomials of torch's AVX2 ``normal_``), so a model starts where it
started when the trainer drew with ``torch.randn``, bit for bit, without importing torch.
(torch on a CPU without AVX2 uses libm's log/sin/cos instead; these draws do not depend on
the machine.)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fmkit.config import FMConfig

if TYPE_CHECKING:  # torch is imported by init_tensor, for the torch trainer only
    import torch


class TorchCompatibleGenerator:
    """The draws of ``torch.Generator().manual_seed(seed)`` for ``rand`` and ``randn``.

    Parameters
    ----------
    seed : int
        As given to torch's ``manual_seed`` (its low 32 bits seed the Mersenne Twister).
    """

    def __init__(self, seed: int) -> None:
        self._bits = np.random.MT19937()
        self._bits._legacy_seeding(int(seed) & 0xFFFFFFFF)
        self._cached_normal: float | None = None  # torch's next_double_normal_sample

    def _raw(self, n: int) -> np.ndarray:
        return self._bits.random_raw(n).astype(np.uint64)  # (n,) 32-bit words

    def _uniform24(self, n: int) -> np.ndarray:
        # torch: (word & (2^24 - 1)) * 2^-24 in double, stored as float32; exact in float32
        # too (24-bit integers, a power-of-two scale)
        words = self._bits.random_raw(n) & np.uint64(0xFFFFFF)
        return words.astype(np.float32) * np.float32(2.0**-24)

    def rand(self, shape: tuple[int, ...]) -> np.ndarray:
        """Return U[0, 1) float32 draws of ``shape``, as ``torch.rand``."""
        return self._uniform24(int(np.prod(shape, dtype=np.int64))).reshape(shape)

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        """Return N(0, 1) float32 draws of ``shape``, as ``torch.randn``."""
        n = int(np.prod(shape, dtype=np.int64))
        if n < 16:  # torch draws these one at a time in double precision
            return np.array([self._normal_double() for _ in range(n)],
                            np.float32).reshape(shape)
        data = self._uniform24(n)
        _box_muller_16(data[: n - n % 16].reshape(-1, 16))
        if n % 16:  # torch redraws the last 16 values
            data[n - 16:] = self._uniform24(16)
            _box_muller_16(data[n - 16:].reshape(1, 16))
        return data.reshape(shape)

    def _normal_double(self) -> float:
        if self._cached_normal is not None:
            value, self._cached_normal = self._cached_normal, None
            return value
        w = self._raw(4)
        u1, u2 = ((((int(w[2 * i]) << 32) | int(w[2 * i + 1])) & ((1 << 53) - 1)) * 2.0**-53
                  for i in range(2))
        r = math.sqrt(-2.0 * math.log1p(-u2))
        theta = 2.0 * math.pi * u1
        self._cached_normal = r * math.sin(theta)
        return r * math.cos(theta)


def _box_muller_16(blocks: np.ndarray) -> None:
    """Turn each row of 16 uniforms into 16 normals in place, as torch's ``normal_fill_16``
    on AVX2 machines (``normal_fill_16_AVX2``): radius sqrt(-2 log(1 - u[:8])) and angle
    2 pi u[8:], with the float32 log and sincos polynomials of ``avx_mathfun.h`` (Cephes),
    including the fused multiply-adds its compiled form contracts, so the draws are torch's
    bit for bit."""
    if blocks.shape[0] >= _COMPILED_FROM:
        compiled = _compiled_box_muller()
        if compiled is not None:
            compiled(blocks)
            return
    u1 = np.float32(1.0) - blocks[:, :8]
    radius = np.sqrt(np.float32(-2.0) * _log_ps(u1))
    sin, cos = _sincos_ps(np.float32(2.0 * math.pi) * blocks[:, 8:])
    blocks[:, :8] = radius * cos
    blocks[:, 8:] = radius * sin


# blocks of 16 from which numba (when installed) runs the same arithmetic one value at a
# time: numpy's whole-array passes took 0.18 s for 3.2M draws (200,000 x 16 factors),
# numba 0.02 s; below, numpy costs less than loading the cached build (MovieLens' 84,000
# draws: 5 ms)
_COMPILED_FROM = 16384
_COMPILED: list = []


def _compiled_box_muller() -> object | None:
    """The numba build of :func:`_box_muller_16` (cached), or None without numba."""
    if not _COMPILED:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is in the 'bayes'/'all' extras
            _COMPILED.append(None)
        else:
            _COMPILED.append(numba.njit(cache=True)(_box_muller_loop))
    return _COMPILED[0]


def _box_muller_loop(blocks: np.ndarray) -> None:  # pragma: no cover - numba
    """:func:`_box_muller_16` value by value: the same float32 operations, in order."""
    f1, half, two_pi = np.float32(1.0), np.float32(0.5), np.float32(2.0 * math.pi)
    for r in range(blocks.shape[0]):
        for k in range(8):
            # log(1 - u) (log256_ps)
            x = max(f1 - blocks[r, k], np.float32(1.1754943508222875e-38))
            bits = np.int32(np.float32(x).view(np.int32))
            e = np.float32((bits >> 23) - 0x7F) + f1
            x = np.int32((bits & np.int32(-2139095041)) | np.int32(0x3F000000)).view(np.float32)
            small = x < np.float32(0.707106781186547524)
            x = (x - f1) + (x if small else np.float32(0.0))
            if small:
                e = e - f1
            z = x * x
            y = np.float32(7.0376836292e-2)
            y = np.float32(np.float64(y) * x + np.float64(np.float32(-1.1514610310e-1)))
            y = np.float32(np.float64(y) * x + np.float64(np.float32(1.1676998740e-1)))
            y = np.float32(np.float64(y) * x + np.float64(np.float32(-1.2420140846e-1)))
            y = np.float32(np.float64(y) * x + np.float64(np.float32(1.4249322787e-1)))
            y = np.float32(np.float64(y) * x + np.float64(np.float32(-1.6668057665e-1)))
            y = np.float32(np.float64(y) * x + np.float64(np.float32(2.0000714765e-1)))
            y = np.float32(np.float64(y) * x + np.float64(np.float32(-2.4999993993e-1)))
            y = np.float32(np.float64(y) * x + np.float64(np.float32(3.3333331174e-1)))
            y = np.float32(np.float64(y * x) * z
                           + np.float64(e * np.float32(-2.12194440e-4)))
            y = y - z * half
            lg = np.float32(np.float64(e) * np.float64(np.float32(0.693359375))
                            + np.float64(x + y))
            radius = np.sqrt(np.float32(-2.0) * lg)
            # sin and cos of 2 pi u (sincos256_ps)
            x = two_pi * blocks[r, k + 8]
            j = np.int32(x * np.float32(1.27323954473516))
            j = (j + 1) & ~1
            y = np.float32(j)
            sin_neg = (j & 4) != 0
            cos_neg = (~(j - 2) & 4) != 0
            first = (j & 2) == 0
            x = np.float32(np.float64(y) * np.float64(np.float32(-0.78515625)) + np.float64(x))
            x = np.float32(np.float64(y) * np.float64(np.float32(-2.4187564849853515625e-4))
                           + np.float64(x))
            x = np.float32(np.float64(y) * np.float64(np.float32(-3.77489497744594108e-8))
                           + np.float64(x))
            z = x * x
            c = np.float32(np.float64(np.float32(2.443315711809948e-5)) * z
                           + np.float64(np.float32(-1.388731625493765e-3)))
            c = np.float32(np.float64(c) * z + np.float64(np.float32(4.166664568298827e-2)))
            c = np.float32(np.float64(c * z) * z - np.float64(z * half)) + f1
            s = np.float32(np.float64(np.float32(-1.9515295891e-4)) * z
                           + np.float64(np.float32(8.3321608736e-3)))
            s = np.float32(np.float64(s) * z + np.float64(np.float32(-1.6666654611e-1)))
            s = np.float32(np.float64(s * z) * x + np.float64(x))
            sin, cos = (s, c) if first else (c, s)
            blocks[r, k] = radius * (-cos if cos_neg else cos)
            blocks[r, k + 8] = radius * (-sin if sin_neg else sin)


_F32 = np.float32
_LOG_P = tuple(_F32(p) for p in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                                 -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                                 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))


def _fma(a: np.ndarray, b: np.ndarray | np.float32, c: np.ndarray | np.float32) -> np.ndarray:
    """float32 a * b + c rounded once (a * b is exact in float64)."""
    return (np.asarray(a, np.float64) * np.float64(b) if np.isscalar(b)
            else np.asarray(a, np.float64) * np.asarray(b, np.float64)
            ).__iadd__(np.asarray(c, np.float64)).astype(_F32)


def _log_ps(x: np.ndarray) -> np.ndarray:
    """avx_mathfun's log256_ps for x in (0, 1]: float32 Cephes log."""
    x = np.maximum(x, np.uint32(0x00800000).view(_F32))  # no denormals
    bits = x.view(np.uint32)
    e = ((bits >> np.uint32(23)).astype(np.int32) - 0x7F).astype(_F32) + _F32(1)
    x = ((bits & np.uint32(0x807FFFFF)) | np.uint32(0x3F000000)).view(_F32)  # mantissa in [0.5, 1)
    small = x < _F32(0.707106781186547524)
    x = (x - _F32(1)) + np.where(small, x, _F32(0))
    e = e - small.astype(_F32)
    z = x * x
    y = np.full_like(x, _LOG_P[0])
    for p in _LOG_P[1:]:
        y = _fma(y, x, p)
    y = _fma(y * x, z, e * _F32(-2.12194440e-4))
    y = y - z * _F32(0.5)
    return _fma(e, _F32(0.693359375), x + y)


def _sincos_ps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """avx_mathfun's sincos256_ps for x >= 0: float32 Cephes sine and cosine."""
    j = (x * _F32(1.27323954473516)).astype(np.int32)  # 4 / pi, truncated
    j = (j + 1) & ~1
    y = j.astype(_F32)
    sin_sign = ((j & 4) << 29).astype(np.uint32)
    cos_sign = ((~(j - 2) & 4) << 29).astype(np.uint32)
    first = (j & 2) == 0
    for dp in (-0.78515625, -2.4187564849853515625e-4, -3.77489497744594108e-8):
        x = _fma(y, _F32(dp), x)  # extended-precision reduction modulo pi / 4
    z = x * x
    c = _fma(_fma(np.full_like(z, _F32(2.443315711809948e-5)), z, _F32(-1.388731625493765e-3)),
             z, _F32(4.166664568298827e-2))
    c = _fma(c * z, z, -(z * _F32(0.5))) + _F32(1)
    s = _fma(_fma(np.full_like(z, _F32(-1.9515295891e-4)), z, _F32(8.3321608736e-3)),
             z, _F32(-1.6666654611e-1))
    s = _fma(s * z, x, x)
    sin = np.where(first, s, c).view(np.uint32) ^ sin_sign
    cos = np.where(first, c, s).view(np.uint32) ^ cos_sign
    return sin.view(_F32), cos.view(_F32)


def init_array(
    config: FMConfig,
    group: str,
    shape: tuple[int, ...],
    generator: TorchCompatibleGenerator,
    *,
    label_mean: float | None = None,
) -> np.ndarray:
    """Return a float32 array for ``group`` ('bias', 'linear' or 'factors').

    ``normal``: N(0, sigma^2); ``uniform``: U(-scale, scale); ``constant``: value;
    ``mean`` (fmkit's, bias only): the training labels' mean for regressors, the logit of the
    positive rate for binary classifiers (``label_mean``; 0 when unknown, as for a stream).
    """
    method = getattr(config, f"{group}_init_method")
    if method == "mean":
        m = 0.0 if label_mean is None else float(label_mean)
        if config.predictor_type == "binary_classifier":
            p = min(max(m, 1e-6), 1 - 1e-6) if label_mean is not None else 0.5
            m = math.log(p / (1.0 - p))
        return np.full(shape, m, np.float32)
    if method == "constant":
        return np.full(shape, float(getattr(config, f"{group}_init_value")), np.float32)
    if method == "uniform":
        scale = np.float32(float(getattr(config, f"{group}_init_scale")))
        return (generator.rand(shape) * np.float32(2) - np.float32(1)) * scale
    sigma = np.float32(float(getattr(config, f"{group}_init_sigma")))
    return generator.randn(shape) * sigma


def init_tensor(
    config: FMConfig,
    group: str,
    shape: tuple[int, ...],
    generator: TorchCompatibleGenerator,
    *,
    label_mean: float | None = None,
) -> torch.Tensor:
    """:func:`init_array` as a torch CPU tensor (for the torch trainer)."""
    import torch

    return torch.from_numpy(init_array(config, group, shape, generator,
                                       label_mean=label_mean))
