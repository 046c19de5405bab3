"""Tests for ngvi_lit.svi: SVI for the Bayesian Gaussian mixture on the `fit` engine (CAVI identity, ELBO monotonicity,
recovery, unbiased batch ELBO, save/resume bit for bit, sources, validation)."""
import numpy as np
import pytest
from ngvi_lit.fit import FitResult, fit
from ngvi_lit.sources import ArraySource, limit_blas_threads
from ngvi_lit.svi import (SVI, GaussianMixture, GMMPosterior, SVIState, adjusted_rand_index, cavi_sweep, default_prior,
                          elbo, fit_cavi, fit_restarts, fit_svi, init_posterior, kl_factors, kl_global,
                          local_step, make_prior, predictive_logpdf, svi_step)
from ngvi_lit.datasets import load_iris, synthetic_mixture

limit_blas_threads(1)   # tiny matrices: threaded BLAS only adds overhead (10x on a loaded 2-core machine)


def _blobs(rng, n=60, D=2, K=3):
    centres = 4 * rng.normal(size=(K, D))
    z = rng.integers(0, K, n)
    return centres[z] + rng.normal(size=(n, D)), z


def _same(a: GMMPosterior, b: GMMPosterior) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize('seed,D,K', [(0, 1, 2), (1, 2, 3), (2, 4, 3)])
def test_full_batch_svi_with_unit_step_is_cavi(seed, D, K):
    rng = np.random.default_rng(seed)
    X, _ = _blobs(rng, 80, D, K)
    model = GaussianMixture(X, K)
    post = init_posterior(X, K, model.prior, rng)
    for _ in range(3):
        b = cavi_sweep(post, model.prior, X)
        a = svi_step(post, model.prior, X, len(X), 1.0)
        e = fit(model, SVI(rho=1.), rng=rng, q0=post, max_iter=1).q          # the same step through the engine
        for u, v, w in zip(a, b, e):
            assert np.abs(u - v).max() <= 1e-12 * np.abs(v).max()
            assert np.array_equal(u, w)
        post = b


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_cavi_elbo_never_decreases(seed):
    rng = np.random.default_rng(seed)
    X, _ = _blobs(rng, 90, 2, 3)
    r = fit_cavi(X, 4, rng, sweeps=25)
    assert np.all(np.diff(r.pass_elbo) >= -1e-9 * np.abs(r.pass_elbo[1:]))
    h = r.history['elbo']                      # the engine's own record: exact ELBOs, standard error 0
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:])) and np.all(r.history['elbo_se'] == 0)
    assert np.allclose(h, r.pass_elbo[1:], rtol=1e-12)


def test_full_batch_fit_converges():
    rng = np.random.default_rng(4)
    X, _ = _blobs(rng, 120, 2, 3)
    r = fit(GaussianMixture(X, 3), SVI(rho=1.), rng=rng, max_iter=500)
    assert r.status == 'converged' and r.nit < 500 and r.history['kl_step'][-1] <= 1e-10


def test_svi_step_is_convex_combination_and_stays_valid(rng):
    X, _ = _blobs(rng, 50, 3, 2)
    prior = default_prior(X, 2)
    post = init_posterior(X, 2, prior, rng)
    for rho in (0.1, 0.5, 1.0):
        new = svi_step(post, prior, X[:7], len(X), rho)
        new.chol_Winv()                       # raises if W^{-1} left the SPD cone
        assert np.all(new.nu > X.shape[1] - 1) and np.all(new.beta > 0) and np.all(new.alpha > 0)


def test_batch_elbo_estimate_is_unbiased_and_step_matches_svi_step(rng):
    X, _ = _blobs(rng, 120, 2, 3)
    model = GaussianMixture(X, 3); post = init_posterior(X, 3, model.prior, rng)
    perm = rng.permutation(120); algo = SVI(rho=0.3)
    outs = [algo.step(model.on_batch(X[perm[i:i + 30]], np.zeros(30), 120), SVIState(post, 0), rng) for i in range(0, 120, 30)]
    # averaging over the batches of a partition gives the full-data ELBO at the starting q exactly
    assert abs(np.mean([info.elbo for _, info in outs]) / elbo(post, model.prior, X) - 1) < 1e-12
    assert all(info.elbo_se > 0 and info.rho == 0.3 and info.kl_step > 0 for _, info in outs)
    new = outs[0][0].post
    ref = svi_step(post, model.prior, X[np.sort(perm[:30])], 120, 0.3)
    assert all(np.allclose(u, v, rtol=1e-12, atol=0) for u, v in zip(new, ref))
    full = model.on_batch(X, np.zeros(120), 120)          # |B| = N: finite-population standard error 0
    assert algo.step(full, SVIState(post, 0), rng)[1].elbo_se == 0


def test_save_resume_is_bit_identical(tmp_path):
    X, _ = _blobs(np.random.default_rng(3), 90, 2, 3)
    model = GaussianMixture(X, 3)
    kw = dict(batch_size=20, min_iter=20, average_from=5)     # 5 batches a pass (the last one short)
    whole = fit(model, SVI(), rng=np.random.default_rng(5), max_iter=20, **kw)
    p = tmp_path / 'svi.npz'
    first = fit(model, SVI(), rng=np.random.default_rng(5), max_iter=7, save=p, **kw)    # stops mid-pass
    assert 'saved' in first.message
    rest = fit(model, SVI(), rng=np.random.default_rng(123), max_iter=20, resume=p, **kw)
    assert rest.nit == whole.nit == 20 and _same(rest.q, whole.q) and _same(rest.q_avg, whole.q_avg)
    for k in ('elbo', 'elbo_se', 'rho', 'kl_step', 'grad_norm', 'rows'):
        assert np.array_equal(rest.history[k], whole.history[k]), k
    with pytest.raises(ValueError, match='model'):          # another data set: refused
        fit(GaussianMixture(X + 1, 3, model.prior), SVI(), rng=np.random.default_rng(0), max_iter=20, resume=p, **kw)


@pytest.mark.parametrize('sampling', ['epochs', 'iid'])
def test_source_backed_model_equals_array_model(sampling):
    X, _ = _blobs(np.random.default_rng(6), 70, 2, 2)
    a = GaussianMixture(X, 2); s = GaussianMixture(ArraySource(X, np.zeros(70)), 2, a.prior)
    ra = fit(a, SVI(), rng=np.random.default_rng(1), batch_size=16, max_iter=12, sampling=sampling)
    rs = fit(s, SVI(), rng=np.random.default_rng(1), batch_size=16, max_iter=12, sampling=sampling)
    assert _same(ra.q, rs.q)
    assert abs(s.elbo(ra.q) / a.elbo(ra.q) - 1) < 1e-12
    d = GaussianMixture(ArraySource(X, np.zeros(70)), 2)     # default prior from one streamed pass
    assert np.allclose(d.prior.W0inv, a.prior.W0inv, rtol=1e-10) and np.allclose(d.prior.m0, a.prior.m0, rtol=1e-12)


def test_nat_vec_round_trip_kl_and_polyak_average(rng):
    X, _ = _blobs(rng, 60, 3, 3)
    model = GaussianMixture(X, 3); post = init_posterior(X, 3, model.prior, rng)
    back = GMMPosterior.from_nat_vec(post.nat_vec)
    assert all(np.allclose(u, v, rtol=1e-14, atol=1e-12) for u, v in zip(post, back))
    assert kl_factors(post, post) == pytest.approx(0, abs=1e-9) and kl_global(post, model.prior) > 0
    other = svi_step(post, model.prior, X[:10], 60, 0.5)
    assert kl_factors(other, post) > 0 and kl_factors(post, other) > 0
    r = fit(model, SVI(), rng=rng, batch_size=10, max_iter=12)
    r.q_avg.chol_Winv()                        # the average of valid iterates is valid
    assert model.prior.nat_vec.shape == (3 * 4 // 2 + 3 + 3,)


def test_svi_recovers_synthetic_structure():
    rng = np.random.default_rng(6)
    X, z, means = synthetic_mixture(rng, N=1500)
    res = fit_svi(X, 3, rng, batch_size=100, passes=2)
    assert adjusted_rand_index(z, res.predict(X)) > 0.9
    assert np.isfinite(res.pass_elbo).all() and isinstance(res, FitResult) and res.nit == 30


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
    assert r.passes.tolist() == [0, 1, 2] and r.pass_elbo.shape == (3,) and r.heldout.shape == (3,)
    assert r.nit == 10 and r.status == 'max_iter' and r.method == 'svi'
    assert np.isfinite(r.heldout).all()
    assert predictive_logpdf(r.post, X).shape == (40,) and r.predict(X).shape == (40,)
    assert r.post.bm.shape == (3, 2) and r.post.C.shape == (3, 2, 2)


def test_restarts_pick_best_elbo(rng):
    X, _ = _blobs(rng)
    runs = []
    best = fit_restarts(lambda *a, **k: runs.append(fit_cavi(*a, **k)) or runs[-1], 3, rng, X, 3, sweeps=5)
    assert best.pass_elbo[-1] == max(r.pass_elbo[-1] for r in runs)


def test_ari_known_values():
    assert adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert abs(adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) - 0.24242424242424243) < 1e-12


def test_iris_ships_with_provenance():
    d = load_iris()
    assert d.shape == (150, 4) and 'Fisher' in d.description and 'BSD' in d.description


@pytest.mark.parametrize('call,name', [
    (lambda X, p, q: fit_svi(X, 0, np.random.default_rng(0)), '`K`'),
    (lambda X, p, q: fit_svi(X, 2, np.random.default_rng(0), batch_size=0), '`batch_size`'),
    (lambda X, p, q: fit_svi(X, 2, np.random.default_rng(0), batch_size=50), '`batch_size`'),
    (lambda X, p, q: fit_svi(X, 2, np.random.default_rng(0), batch_size=5, kappa=0.4), '`kappa`'),
    (lambda X, p, q: fit_svi(X, 2, np.random.default_rng(0), batch_size=5, tau=0.5), '`tau`'),
    (lambda X, p, q: fit_svi(X, 2, np.random.default_rng(0), passes=-1), '`passes`'),
    (lambda X, p, q: fit_svi(np.full((5, 2), np.nan), 2, np.random.default_rng(0)), '`X`'),
    (lambda X, p, q: fit_svi(X, 2, np.random.default_rng(0), X_test=np.ones((3, 5))), '`X_test`'),
    (lambda X, p, q: fit_cavi(X, 2, np.random.default_rng(0), init=q._replace(nu=q.nu[:1])), '`init.nu`'),
    (lambda X, p, q: SVI(rho=1.5), '`rho`'),
    (lambda X, p, q: SVI(seed=-1), '`seed`'),
    (lambda X, p, q: GaussianMixture(X, 2, prior=make_prior(1.0, [0.0], 1.0, np.eye(1), 1.0)), '`prior`'),
    (lambda X, p, q: fit(GaussianMixture(X, 3), SVI(), rng=np.random.default_rng(0), q0=q), '`q0.alpha`'),
    (lambda X, p, q: svi_step(q, p, X, len(X), 1.5), '`rho`'),
    (lambda X, p, q: svi_step(q, p, X, 3, 0.5), '`N`'),
    (lambda X, p, q: svi_step(q, p, X[:, :1], len(X), 0.5), '`X`'),
    (lambda X, p, q: make_prior(1.0, [0.0, 0.0], 1.0, np.eye(2), 0.5), '`nu0`'),
    (lambda X, p, q: make_prior(1.0, [0.0, 0.0], 1.0, -np.eye(2), 3.0), '`W0inv`'),
    (lambda X, p, q: elbo(q, p, X, phi=np.ones((2, 2))), '`phi`'),
    (lambda X, p, q: GMMPosterior.from_nat_vec(np.ones((2, 7))), '`nat_vec`'),
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
