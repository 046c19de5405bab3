"Tests of the amortised-inference room: VAE gradients, decoder curvature, batched refinement = the library's steps, IW vs quadrature, errors."
import numpy as np
import pytest
from ngvi_lit.amortised import (VAE, LocalELBO, decoder_grad_hess, antithetic, batch_expect, batch_iblr, ngvi_refine,
                                adam_refine, elbo_estimate, iw_logml, quad_logml, train_vae, generated_set, binarise_digits)
from ngvi_lit.families import MvNormal
from ngvi_lit.fit import fit
from ngvi_lit.baseline import AdamVI
from ngvi_lit.updates import iblr_step


@pytest.fixture(scope='module')
def setup():
    X, _, tv, tth = generated_set(np.random.default_rng(0), n=200, d_x=12, hidden=6)
    v = VAE(12, 2, 8)
    th = v.init(np.random.default_rng(1)) * 2
    M, C = v.encode(th, X[:4]); Ci = np.linalg.inv(C)
    return X, tv, tth, v, th, M, Ci.transpose(0, 2, 1) @ Ci


@pytest.mark.parametrize('cov', ['full', 'diag'])
def test_neg_elbo_grad_matches_finite_differences(setup, cov):
    X = setup[0]; rng = np.random.default_rng(2)
    v = VAE(12, 3, 6, cov=cov); th = v.init(rng) * 1.5
    eps = rng.standard_normal((4, 2, 3))
    loss = lambda t: -v.neg_elbo_grad(t, X[:4], eps)[0].mean()
    g = v.neg_elbo_grad(th, X[:4], eps)[1]
    idx = rng.choice(v.n_params, 15, replace=False)
    fd = np.array([(loss(th + e) - loss(th - e)) / 2e-6 for e in np.eye(v.n_params)[idx] * 1e-6])
    assert np.max(np.abs(fd - g[idx])) < 1e-6


def test_decoder_hessian_matches_finite_differences(setup):
    X, _, _, v, th, _, _ = setup
    wd = v.split(th)[1]; z = np.random.default_rng(3).standard_normal((3, 2))
    _, g, H = decoder_grad_hess(v.dec, wd, z, X[:3])
    for k in range(2):
        dz = np.eye(2)[k] * 1e-5
        gp = decoder_grad_hess(v.dec, wd, z + dz, X[:3])[1]; gm = decoder_grad_hess(v.dec, wd, z - dz, X[:3])[1]
        assert np.abs((gp - gm) / 2e-5 - H[:, :, k]).max() < 1e-6


def test_batched_expectations_and_step_equal_library(setup):
    X, _, _, v, th, M, P = setup
    eps = antithetic(np.random.default_rng(4), 4, 8, 2); Lp = np.linalg.cholesky(P)
    ex = batch_expect(v, th, X[:4], M, Lp, eps)
    rho = np.array([1., .5, .3, .1])
    Mn, Pn, _ = batch_iblr(M, P, Lp, ex.grad, ex.hess, rho)
    for b in range(4):
        qb = MvNormal.from_precision(M[b], P[b]); e1 = LocalELBO(v, th, X[b]).expectations(qb, eps[b])
        assert abs(e1.elbo - ex.elbo[b]) < 1e-10 and np.allclose(e1.hess, ex.hess[b], atol=1e-12)
        q1 = iblr_step(qb, e1.grad, e1.hess, rho[b])
        assert np.allclose(q1.mean, Mn[b], atol=1e-12) and np.allclose(q1.prec, Pn[b], atol=1e-12)


def test_refinement_retraces_fit(setup):
    X, _, _, v, th, M, P = setup
    q0 = MvNormal.from_precision(M[0], P[0])
    r = fit(LocalELBO(v, th, X[0]), 'ngvi', rng=np.random.default_rng(5), expectations='mc', rule='iblr', n_samples=8, q0=q0, max_iter=4)
    rb = ngvi_refine(v, th, X[:1], M[:1], P[:1], 4, np.random.default_rng(5), 8)
    assert np.abs(r.q.mean - rb.M[0]).max() < 1e-6 and np.abs(r.q.prec - rb.P[0]).max() < 1e-6
    ra = adam_refine(v, th, X[:1], M[:1], P[:1], 4, np.random.default_rng(6), lr=.05, n_samples=4)
    r = fit(LocalELBO(v, th, X[0]), AdamVI(lr=.05, n_samples=4), rng=np.random.default_rng(6), q0=q0, max_iter=4)
    assert np.allclose(r.q.mean, ra.M[0], atol=1e-9) and np.allclose(r.q.prec, ra.P[0], rtol=1e-7, atol=1e-9)


def test_refinement_raises_elbo(setup):
    X, _, _, v, th, M, P = setup
    r = ngvi_refine(v, th, X[:4], M, P, 3, np.random.default_rng(7), 16)
    e0 = elbo_estimate(v, th, X[:4], M, P, np.random.default_rng(8), 400)[0]
    e3, se = elbo_estimate(v, th, X[:4], r.M, r.P, np.random.default_rng(8), 400)
    assert np.all(e3 > e0 - 4 * se) and (e3 - e0).mean() > 0


def test_iw_agrees_with_quadrature(setup):
    X, tv, tth = setup[:3]
    r = ngvi_refine(tv, tth, X[:3], np.zeros((3, 2)), np.broadcast_to(np.eye(2), (3, 2, 2)).copy(), 10, np.random.default_rng(9), 32)
    qd = quad_logml(tv, tth, X[:3], r.M, r.P, n_grid=201, width=12.)
    iw = iw_logml(tv, tth, X[:3], r.M, r.P, np.random.default_rng(10), K=2000)
    assert np.all(np.abs(iw.logml - qd) < 5 * iw.se + 1e-3) and np.all(iw.ess > 100)


def test_errors_name_the_argument(setup):
    X, _, _, v, th, M, P = setup
    with pytest.raises(ValueError, match='d_z'): VAE(10, 9)
    with pytest.raises(ValueError, match='cov'): VAE(10, 2, cov='band')
    with pytest.raises(ValueError, match='X'): v.check_X(np.full((2, 12), .5))
    with pytest.raises(ValueError, match='n_samples'): ngvi_refine(v, th, X[:4], M, P, 1, np.random.default_rng(0), 7)
    with pytest.raises(ValueError, match='M0'): ngvi_refine(v, th, X[:4], M[:3], P, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match='inflate'): iw_logml(v, th, X[:4], M, P, np.random.default_rng(0), K=10, inflate=0.)
    with pytest.raises(ValueError, match='lr'): adam_refine(v, th, X[:4], M, P, 1, np.random.default_rng(0), lr=-1.)
    with pytest.raises(ValueError, match='2-D'): quad_logml(VAE(12, 3, 4), VAE(12, 3, 4).init(np.random.default_rng(0)), X[:1], np.zeros((1, 3)), np.eye(3)[None])
    with pytest.raises(ValueError, match='x'): LocalELBO(v, th, np.full(12, 2.))


def test_digits_binarised():
    X = binarise_digits()
    assert X.shape == (1797, 64) and set(np.unique(X)) == {0., 1.} and 0.2 < X.mean() < 0.5


@pytest.mark.slow
def test_refinement_closes_the_gap_after_training():
    X = binarise_digits(); Xtr, Xh = X[:1400], X[1400:1460]
    v = VAE(64, 4, 64)
    tr = train_vae(v, Xtr, np.random.default_rng(0), budget=64 * 4000)
    M, C = v.encode(tr.theta, Xh); Ci = np.linalg.inv(C); P = Ci.transpose(0, 2, 1) @ Ci
    r = ngvi_refine(v, tr.theta, Xh, M, P, 50, np.random.default_rng(1), 32, record=(5,))
    ev = lambda M, P: elbo_estimate(v, tr.theta, Xh, M, P, np.random.default_rng(2), 1000)[0]
    e0, e5, e50 = ev(M, P), ev(*r.record[5]), ev(r.M, r.P)
    assert (e50 - e0).mean() > 0.1 and (e5 - e0).mean() / (e50 - e0).mean() > 0.85
