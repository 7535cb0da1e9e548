"""Each coordinate update equals a direct float64 computation of its Gibbs conditional."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from helpers.reference import naive_fm

from fmkit.bayes.groups import Block, plan_blocks
from fmkit.bayes.kernels import BACKENDS, HAVE_NUMBA, balanced_spans, predict_rows, update_block
from fmkit.bayes.sampler import CoordinateSampler

K = 3


def _tiny(rng: np.random.Generator, one_hot: bool) -> sp.csr_matrix:
    n, f = 25, 8
    rows = []
    for _ in range(n):
        if one_hot:  # field A = keys 0..3, field B = keys 4..7, one key each
            keys = [int(rng.integers(0, 4)), int(rng.integers(4, 8))]
        else:
            keys = sorted(rng.choice(f, size=3, replace=False).tolist())
        rows.append(keys)
    indptr = np.cumsum([0] + [len(r) for r in rows])
    data = rng.normal(1.0, 0.4, indptr[-1])
    return sp.csr_matrix((data, np.concatenate(rows), indptr), shape=(n, f))


def _state(rng: np.random.Generator, X: sp.csr_matrix, backend: str) -> CoordinateSampler:
    y = rng.normal(3.0, 1.0, X.shape[0])
    groups = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    s = CoordinateSampler(X, y, groups, K, np.random.default_rng(0), backend=backend,
                          row_weights=rng.uniform(0.5, 2.0, X.shape[0]))
    s.w0 = 0.7
    s.w = rng.normal(0, 0.5, X.shape[1])
    s.Vt = np.ascontiguousarray(rng.normal(0, 0.5, (K, X.shape[1])))
    s.lam_w = rng.uniform(0.5, 3.0, 3)
    s.mu_w = rng.normal(0, 0.3, 3)
    s.lam_v = rng.uniform(0.5, 3.0, (K, 3))
    s.mu_v = rng.normal(0, 0.3, (K, 3))
    s.alpha = 2.3
    s.e = s.target - predict_rows(backend, s.X, s.X2, s.w0, s.w, s.Vt, s.Q)
    return s


def _direct(s: CoordinateSampler, kind: str, key: int, f: int) -> tuple[float, float]:
    """Posterior mean and sd of one parameter from two float64 FM evaluations."""
    w, V = s.w.copy(), s.Vt.T.copy()

    def y_at(t: float) -> np.ndarray:
        ww, VV = w.copy(), V.copy()
        if kind == "w":
            ww[key] = t
        else:
            VV[key, f] = t
        return naive_fm(s.X, s.w0, ww, VV)

    g = y_at(0.0)
    h = y_at(1.0) - g  # y is linear in each single parameter
    grp = s.groups[key]
    lam, mu = (s.lam_w[grp], s.mu_w[grp]) if kind == "w" else (s.lam_v[f, grp], s.mu_v[f, grp])
    a = s.alpha * s.r
    prec = lam + np.sum(a * h * h)
    mean = (lam * mu + np.sum(a * h * (s.target - g))) / prec
    return mean, 1.0 / np.sqrt(prec)


def _update(s: CoordinateSampler, kind: str, block: Block, f: int, noise: np.ndarray) -> None:
    q = None if kind == "w" else s.Q[f]
    theta = s.w if kind == "w" else s.Vt[f]
    lam, mu = (s.lam_w, s.mu_w) if kind == "w" else (s.lam_v[f], s.mu_v[f])
    update_block(s.backend, block.start, block.stop, block.independent, s.indptr, s.rows,
                 s.vals, s.r, s.e, q, theta, s.groups, lam, mu, s.alpha, noise, 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["w", "v"])
@pytest.mark.parametrize("noise", [0.0, 1.0, -1.7])
def test_single_key_conditional_matches_direct_float64(rng, backend, kind, noise):
    X = _tiny(rng, one_hot=False)
    for key, f in [(0, 0), (3, 2), (7, 1)]:
        s = _state(rng, X, backend)
        mean, sd = _direct(s, kind, key, f)
        _update(s, kind, Block(key, key + 1, False), f, np.array([noise]))
        got = s.w[key] if kind == "w" else s.Vt[f, key]
        assert got == pytest.approx(mean + noise * sd, rel=1e-10, abs=1e-12)
        # residuals and q stay consistent with the new parameters
        Q = np.empty_like(s.Q)
        y = predict_rows(backend, s.X, s.X2, s.w0, s.w, s.Vt, Q)
        np.testing.assert_allclose(s.e, s.target - y, atol=1e-10)
        if kind == "v":
            np.testing.assert_allclose(s.Q, Q, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["w", "v"])
def test_independent_block_draws_every_key_from_its_conditional(rng, backend, kind):
    X = _tiny(rng, one_hot=True)
    blocks = plan_blocks(X.tocsc())
    assert [(b.start, b.stop, b.independent) for b in blocks] == [(0, 4, True), (4, 8, True)]
    s = _state(rng, X, backend)
    f = 1
    expected = [_direct(s, kind, key, f) for key in range(4, 8)]
    noise = rng.standard_normal(4)
    _update(s, kind, blocks[1], f, noise)
    got = s.w[4:] if kind == "w" else s.Vt[f, 4:]
    want = [m + z * sd for (m, sd), z in zip(expected, noise)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_sequential_block_on_co_occurring_keys_matches_key_by_key(rng):
    X = _tiny(rng, one_hot=False)
    for backend in BACKENDS:
        s = _state(rng, X, backend)
        ref = _state(np.random.default_rng(0), X, backend)
        for attr in ("w", "Vt", "lam_w", "mu_w", "lam_v", "mu_v", "target", "r", "e", "Q"):
            setattr(ref, attr, getattr(s, attr).copy())
        noise = rng.standard_normal(8)
        _update(s, "v", Block(0, 8, False), 2, noise)
        for key in range(8):
            mean, sd = _direct(ref, "v", key, 2)
            _update(ref, "v", Block(key, key + 1, False), 2, noise[key:key + 1])
            assert ref.Vt[2, key] == pytest.approx(mean + noise[key] * sd, rel=1e-10)
        np.testing.assert_allclose(s.Vt, ref.Vt, rtol=1e-12)


def test_predict_rows_matches_reference(rng):
    X = _tiny(rng, one_hot=False)
    w = np.linspace(-1, 1, 8)
    V = np.arange(K * 8, dtype=float).reshape(8, K) / 20
    ref = naive_fm(X, 0.3, w, V)
    for backend in BACKENDS:
        Q = np.zeros((K, X.shape[0]))
        out = predict_rows(backend, X, X.multiply(X).tocsr(), 0.3, w,
                           np.ascontiguousarray(V.T), Q)
        np.testing.assert_allclose(out, ref, rtol=1e-10)
        np.testing.assert_allclose(Q.T, X @ V, rtol=1e-12)


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
@pytest.mark.parametrize("likelihood", ["gaussian", "probit"])
def test_unit_values_and_parallel_blocks_give_the_same_chain_bit_for_bit(likelihood):
    """One-hot rows (values 1.0) take loops that skip the values, and independent blocks
    run on several threads: 20 sweeps equal, bit for bit, those of the plain sequential
    loops that read every value, and the numpy backend to rounding."""
    rng = np.random.default_rng(5)
    n, users, items = 3000, 200, 300
    keys = np.stack([rng.integers(0, users, n), users + rng.integers(0, items, n)], 1)
    X = sp.csr_matrix((np.ones(2 * n), keys.reshape(-1), np.arange(0, 2 * n + 1, 2)),
                      shape=(n, users + items))
    y = (rng.random(n) < 0.6).astype(float) if likelihood == "probit" else \
        rng.normal(3.5, 1.0, n)
    groups = np.repeat([0, 1], [users, items])

    def chain(backend, *, unit, sequential):
        s = CoordinateSampler(X, y, groups, 4, np.random.default_rng(1), backend=backend,
                              likelihood=likelihood)
        assert s.unit  # every value is 1.0
        s.unit = unit
        if sequential:
            s.blocks = [Block(b.start, b.stop, False) for b in s.blocks]
        for _ in range(20):
            s.sweep()
        return np.concatenate([[s.w0], s.w, s.Vt.ravel()])

    fast = chain("numba", unit=True, sequential=False)
    assert [(b.start, b.stop, b.independent) for b in plan_blocks(X.tocsc())] == \
        [(0, users, True), (users, users + items, True)]
    np.testing.assert_array_equal(fast, chain("numba", unit=False, sequential=True))
    np.testing.assert_array_equal(fast, chain("numba", unit=False, sequential=False))
    np.testing.assert_allclose(fast, chain("numpy", unit=False, sequential=False),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
@pytest.mark.parametrize("env", [{}, {"GOMP_SPINCOUNT": "77"}, {"OMP_WAIT_POLICY": "ACTIVE"}])
def test_start_threads_sets_the_spin_only_while_loading_and_respects_the_users(env):
    """The short OpenMP spin is set for numba's OpenMP load only: afterwards the
    environment is as before, and a spin or policy the user set is left alone."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, os\n"
            "from fmkit.bayes import kernels\n"
            "seen = {}\n"
            "from numba.np.ufunc import parallel\n"
            "launch = parallel._launch_threads\n"
            "def spy():\n"
            "    seen.update({k: os.environ.get(k) for k in ('GOMP_SPINCOUNT', "
            "'OMP_WAIT_POLICY')})\n"
            "    launch()\n"
            "parallel._launch_threads = spy\n"
            "kernels.start_threads()\n"
            "print(json.dumps({'during': seen, 'after': os.environ.get('GOMP_SPINCOUNT')}))\n")
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if env:
        assert got["during"] == {}  # not launched early: numba starts its threads itself
        assert got["after"] == env.get("GOMP_SPINCOUNT")
    else:
        assert got["during"] == {"GOMP_SPINCOUNT": "3000", "OMP_WAIT_POLICY": None}
        assert got["after"] is None


def test_balanced_spans_cut_a_block_into_runs_of_about_equal_entries():
    # popular keys first, as MovieLens numbers its films: a split of the keys themselves
    # would give the first run nearly all the entries
    lengths = np.array([400, 300, 200, 50] + [5] * 40, np.int64)
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.uint64)
    spans = balanced_spans(indptr, 0, lengths.shape[0], 2)
    assert spans[0] == 0 and spans[-1] == lengths.shape[0] and spans.shape == (3,)
    halves = [int(lengths[a:b].sum()) for a, b in zip(spans[:-1], spans[1:], strict=True)]
    assert halves == [700, 450]  # the nearest cut to 575 entries at a key boundary
    inner = balanced_spans(indptr, 4, 44, 4)  # a block that starts inside the array
    assert list(inner) == [4, 14, 24, 34, 44]
    assert list(balanced_spans(indptr, 3, 5, 8)) == [3] + [4] * 7 + [5]  # 50 then 5 entries
    assert np.all(np.diff(balanced_spans(indptr, 0, 44, 8)) >= 0)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("kind", ["w", "v"])
def test_parallel_update_is_the_same_bit_for_bit_for_any_split_of_the_keys(rng, kind):
    X = _tiny(rng, one_hot=True)
    block = plan_blocks(X.tocsc())[1]
    noise = rng.standard_normal(4)
    results = []
    for spans in ([4, 8], [4, 5, 6, 7, 8], [4, 4, 6, 8], None):
        s = _state(np.random.default_rng(5), X, "numba")
        f = 2
        q = None if kind == "w" else s.Q[f]
        theta = s.w if kind == "w" else s.Vt[f]
        lam, mu = (s.lam_w, s.mu_w) if kind == "w" else (s.lam_v[f], s.mu_v[f])
        update_block("numba", block.start, block.stop, True, s.indptr, s.rows, s.vals, s.r,
                     s.e, q, theta, s.groups, lam, mu, s.alpha, noise, 1.0,
                     spans=None if spans is None else np.array(spans, np.int64))
        results.append((theta.copy(), s.e.copy(), s.Q.copy()))
    for theta, e, Q in results[1:]:
        assert np.array_equal(theta, results[0][0])
        assert np.array_equal(e, results[0][1]) and np.array_equal(Q, results[0][2])
