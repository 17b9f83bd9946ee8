"""Kernel eigensolvers against numpy.linalg.eigh (issue: band models, item 4)."""
import numpy as np
import pytest

from packets import linalg


def _random_hermitian(rng, n, degenerate=False):
    if degenerate:
        q, _ = np.linalg.qr(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
        d = np.round(rng.normal(size=n))
        d[: max(2, n // 2)] = d[0]  # a degenerate multiplet
        return q @ np.diag(d) @ q.conj().T
    a = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    return a + a.conj().T


@pytest.mark.parametrize("n", range(2, 9))
@pytest.mark.parametrize("degenerate", [False, True])
def test_eigh_matches_numpy(n, degenerate):
    rng = np.random.default_rng(100 + n)
    for _ in range(20):
        h = _random_hermitian(rng, n, degenerate)
        w = np.empty(n)
        v = np.empty((n, n), complex)
        work = np.empty((n, n), complex)
        linalg.eigh(h, w, v, work)
        w0 = np.linalg.eigh(h)[0]
        scale = max(1.0, np.abs(w0).max())
        assert np.abs(w - w0).max() < 1e-12 * scale
        assert np.abs(h @ v - v * w).max() < 1e-12 * scale
        assert np.abs(v.conj().T @ v - np.eye(n)).max() < 1e-12
        # spectral projectors of each distinct eigenvalue are gauge invariant
        for lam in np.unique(np.round(w0, 8)):
            sel = np.abs(w - lam) < 1e-8
            sel0 = np.abs(w0 - lam) < 1e-8
            v0 = np.linalg.eigh(h)[1]
            p = v[:, sel] @ v[:, sel].conj().T
            p0 = v0[:, sel0] @ v0[:, sel0].conj().T
            assert np.abs(p - p0).max() < 1e-10


def test_eigh2_exact_degeneracy_and_signs():
    for h in (np.zeros((2, 2), complex), np.diag([1.0, -1.0]).astype(complex), np.diag([-1.0, 1.0]).astype(complex),
              np.array([[0, 1j], [-1j, 0]])):
        w = np.empty(2)
        v = np.empty((2, 2), complex)
        linalg.eigh2(h, w, v)
        assert np.all(np.isfinite(v))
        assert np.allclose(h @ v, v * w, atol=1e-15)
        assert np.allclose(v.conj().T @ v, np.eye(2), atol=1e-15)


def test_unitary_step_is_exact_exponential():
    from scipy.linalg import expm
    rng = np.random.default_rng(3)
    for n in (2, 3, 5):
        h = _random_hermitian(rng, n)
        w = np.empty(n)
        v = np.empty((n, n), complex)
        linalg.eigh(h, w, v, np.empty((n, n), complex))
        chi = rng.normal(size=n) + 1j * rng.normal(size=n)
        ref = expm(-1j * h * 0.7) @ chi
        linalg.unitary_step(w, v, 0.7, chi, np.empty(n, complex))
        assert np.abs(chi - ref).max() < 1e-12


def test_sandwich_and_expectation():
    rng = np.random.default_rng(4)
    n = 4
    h = _random_hermitian(rng, n)
    m = _random_hermitian(rng, n)
    v = np.linalg.eigh(h)[1]
    out = np.empty((n, n), complex)
    linalg.sandwich(v, m, out)
    assert np.abs(out - v.conj().T @ m @ v).max() < 1e-12
    chi = rng.normal(size=n) + 1j * rng.normal(size=n)
    assert abs(linalg.expectation(m, chi) - (chi.conj() @ m @ chi).real) < 1e-12
    assert linalg.is_hermitian(m, 1e-12)
    m[0, 1] += 0.1
    assert not linalg.is_hermitian(m, 1e-12)
