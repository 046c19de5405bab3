"""Tests for ngvi_lit.svi: SVI for the Bayesian Gaussian mixture (CAVI identity, ELBO monotonicity, recovery, validation)."""
import numpy as np
import pytest
from ngvi_lit.minibatch import limit_blas_threads
from ngvi_lit.svi import (GMMPosterior, adjusted_rand_index, cavi_sweep, default_prior, elbo, fit_cavi, fit_restarts,
                          fit_svi, init_posterior, load_iris, local_step, make_prior, predictive_logpdf, rm_schedule,
                          svi_step, synthetic_mixture)

limit_blas_threads(1)   # tiny matrices: threaded BLAS only adds overhead (10x on a loaded 2-core machine)


def _blobs(rng, n=60, D=2, K=3):
    centres = 4 * rng.normal(size=(K, D))
    z = rng.integers(0, K, n)
    return centres[z] + rng.normal(size=(n, D)), z


@pytest.mark.parametrize('seed,D,K', [(0, 1, 2), (1, 2, 3), (2, 4, 3)])
def test_full_batch_svi_with_unit_step_is_cavi(seed, D, K):
    rng = np.random.default_rng(seed)
    X, _ = _blobs(rng, 80, D, K)
    prior = default_prior(X, K)
    post = init_posterior(X, K, prior, rng)
    for _ in range(3):
        a, b = svi_step(post, prior, X, len(X), 1.0), cavi_sweep(post, prior, X)
        for u, v in zip(a, b):
            assert np.abs(u - v).max() <= 1e-12 * np.abs(v).max()
        post = b


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_cavi_elbo_never_decreases(seed):
    rng = np.random.default_rng(seed)
    X, _ = _blobs(rng, 90, 2, 3)
    r = fit_cavi(X, 4, rng, sweeps=25)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))


def test_svi_step_is_convex_combination_and_stays_valid(rng):
    X, _ = _blobs(rng, 50, 3, 2)
    prior = default_prior(X, 2)
    post = init_posterior(X, 2, prior, rng)
    for rho in (0.1, 0.5, 1.0):
        new = svi_step(post, prior, X[:7], len(X), rho)
        new.chol_Winv()                       # raises if W^{-1} left the SPD cone
        assert np.all(new.nu > X.shape[1] - 1) and np.all(new.beta > 0) and np.all(new.alpha > 0)


def test_svi_recovers_synthetic_structure():
    rng = np.random.default_rng(6)
    X, z, means = synthetic_mixture(rng, N=1500)
    res = fit_svi(X, 3, rng, batch_size=100, passes=2)
    assert adjusted_rand_index(z, res.predict(X)) > 0.9
    assert np.isfinite(res.elbo).all()


def test_responsibilities_finite_for_far_points(rng):
    X, _ = _blobs(rng)
    prior = default_prior(X, 3)
    post = init_posterior(X, 3, prior, rng)
    phi, lse = local_step(post, np.array([[1e8, -1e8], [0.0, 0.0]]))
    assert phi.shape == (2, 3) and np.isfinite(phi).all() and np.isfinite(lse).all()
    assert np.allclose(phi.sum(1), 1)


def test_shapes_and_predictive(rng):
    X, _ = _blobs(rng, 40, 2, 3)
    r = fit_svi(X, 3, rng, batch_size=8, passes=2, X_test=X[:5])
    assert r.passes.tolist() == [0, 1, 2] and r.elbo.shape == (3,) and r.heldout.shape == (3,)
    assert np.isfinite(r.heldout).all()
    assert predictive_logpdf(r.post, X).shape == (40,) and r.predict(X).shape == (40,)
    assert r.post.bm.shape == (3, 2) and r.post.C.shape == (3, 2, 2)


def test_restarts_pick_best_elbo(rng):
    X, _ = _blobs(rng)
    best = fit_restarts(fit_cavi, 3, rng, X, 3, sweeps=5)
    assert np.isfinite(best.elbo[-1])


def test_ari_known_values():
    assert adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert abs(adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) - 0.24242424242424243) < 1e-12


def test_iris_ships_with_provenance():
    d = load_iris()
    assert d.shape == (150, 4) and 'Fisher' in d.description and 'BSD' in d.description


@pytest.mark.parametrize('call,name', [
    (lambda X, p, q: fit_svi(X, 0, np.random.default_rng(0)), '`K`'),
    (lambda X, p, q: fit_svi(X, 2, np.random.default_rng(0), batch_size=0), '`batch_size`'),
    (lambda X, p, q: fit_svi(X, 2, np.random.default_rng(0), batch_size=5, kappa=0.4), '`kappa`'),
    (lambda X, p, q: fit_svi(np.full((5, 2), np.nan), 2, np.random.default_rng(0)), '`X`'),
    (lambda X, p, q: fit_svi(X, 2, np.random.default_rng(0), X_test=np.ones((3, 5))), '`X_test`'),
    (lambda X, p, q: svi_step(q, p, X, len(X), 1.5), '`rho`'),
    (lambda X, p, q: svi_step(q, p, X, 3, 0.5), '`N`'),
    (lambda X, p, q: svi_step(q, p, X[:, :1], len(X), 0.5), '`X`'),
    (lambda X, p, q: make_prior(1.0, [0.0, 0.0], 1.0, np.eye(2), 0.5), '`nu0`'),
    (lambda X, p, q: make_prior(1.0, [0.0, 0.0], 1.0, -np.eye(2), 3.0), '`W0inv`'),
    (lambda X, p, q: rm_schedule(0), '`t`'),
    (lambda X, p, q: elbo(q, p, X, phi=np.ones((2, 2))), '`phi`'),
])
def test_bad_input_names_argument(call, name):
    rng = np.random.default_rng(0)
    X, _ = _blobs(rng, 20, 2, 2)
    prior = default_prior(X, 2)
    post = init_posterior(X, 2, prior, rng)
    with pytest.raises(ValueError, match=name):
        call(X, prior, post)


def test_rng_must_be_generator():
    X, _ = _blobs(np.random.default_rng(0), 20)
    with pytest.raises(TypeError, match='rng'):
        fit_svi(X, 2, 0)
