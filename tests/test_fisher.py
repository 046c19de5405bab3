"""Property tests for ngvi_lit.fisher: Fisher four ways, KL quadratic form, F^-1 grad_lambda = grad_mu, Gaussian coordinates."""
import numpy as np
import pytest

from ngvi_lit.families import MvNormal
from ngvi_lit.conjugate import example_families
from ngvi_lit.fisher import (GAUSSIAN_COORDS, empirical_fisher, fisher_analytic, fisher_cov_T, fisher_score_mc,
                             gaussian_fisher, gaussian_from_coords, gaussian_kl_flow, gaussian_kl_grad,
                             gaussian_tangents, gaussian_to_coords, kl_quadratic_form, natural_gradient, score_outer)

FAMILIES = ['MvNormal', 'DiagNormal', 'Bernoulli', 'Categorical', 'Poisson', 'Gamma', 'Beta', 'Dirichlet', 'Wishart']


def fam(name, seed=1):
    return example_families(np.random.default_rng(seed))[name]


def _fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for k in np.ndindex(*x.shape):
        e = np.zeros_like(x); e[k] = h
        g[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def _jac(f, x, h=1e-6):
    return np.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))], 1)


# ------------------------------------------------------------------ Fisher estimates
@pytest.mark.parametrize('name', FAMILIES)
@pytest.mark.parametrize('estimator', [fisher_score_mc, fisher_cov_T])
def test_monte_carlo_fisher_matches_analytic(name, estimator):
    q = fam(name)
    F = fisher_analytic(q)
    est = estimator(q, np.random.default_rng(21), 8000)
    assert est.value.shape == F.shape and est.n == 8000
    z = np.abs(est.value - F) / (est.stderr + 1e-12 * np.abs(F).max())
    assert np.all(z < 4.5), z.max()


@pytest.mark.slow
@pytest.mark.parametrize('name', FAMILIES)
def test_monte_carlo_fisher_many_draws(name):
    "With 10^5 draws and three seeds the estimates stay within 4.5 standard errors of the analytic Fisher."
    q = fam(name)
    F = fisher_analytic(q)
    for s in range(3):
        est = fisher_score_mc(q, np.random.default_rng(50 + s), 100_000)
        assert np.all(np.abs(est.value - F) < 4.5 * est.stderr + 1e-12 * np.abs(F).max())


def test_score_outer_and_empirical_fisher():
    G = np.random.default_rng(0).standard_normal((50, 3))
    est = score_outer(G)
    np.testing.assert_allclose(est.value, G.T @ G / 50)
    np.testing.assert_allclose(empirical_fisher(G), est.value)
    with pytest.raises(ValueError, match='`grads`'):
        empirical_fisher(np.ones(3))
    with pytest.raises(ValueError, match='`scores`'):
        score_outer(np.ones(3))


def _ls_grads(y, th):
    r, v = y - th[0], np.exp(2 * th[1])
    return np.stack([-r / v, 1 - r**2 / v], 1)


def test_empirical_fisher_misleads_away_from_optimum():
    "Location-scale Gaussian: EF ~ F at the MLE, but far away its step is nearly orthogonal and far too short."
    y = np.random.default_rng(0).normal(0.0, 1.0, 400)
    mle = np.array([y.mean(), np.log(y.std())])
    F = lambda th: np.diag([np.exp(-2 * th[1]), 2.0])
    G = _ls_grads(y, mle)
    est = score_outer(G)
    assert np.all(np.abs(empirical_fisher(G) - F(mle)) < 4 * est.stderr)
    th = np.array([3.0, -0.5]); G = _ls_grads(y, th); g = G.mean(0)
    dF, dE = np.linalg.solve(F(th), g), np.linalg.solve(empirical_fisher(G), g)
    cos = dF @ dE / np.linalg.norm(dF) / np.linalg.norm(dE)
    assert cos < 0.5 and np.linalg.norm(dE) < 0.1 * np.linalg.norm(dF)


# ------------------------------------------------------------------ KL as a quadratic form
@pytest.mark.parametrize('name', FAMILIES)
def test_kl_local_quadratic_form(name):
    q = fam(name)
    v = np.random.default_rng(4).standard_normal(q.nat_vec.shape)
    v *= 0.1 * np.abs(q.nat_vec).max() / np.abs(v).max()
    errs = []
    for t in (1e-2, 1e-3):
        kl, quad = kl_quadratic_form(q, t * v)
        assert np.all(quad > 0) and np.shape(kl) == q.batch_shape
        errs.append(np.max(np.abs(np.asarray(kl) / quad - 1)))
    assert errs[1] < 1e-2 and errs[1] < errs[0] / 5      # ratio -> 1 linearly in t


def test_kl_quadratic_form_rejects_bad_delta():
    with pytest.raises(ValueError, match='`delta`'):
        kl_quadratic_form(fam('Gamma'), np.ones(3))


# ------------------------------------------------------------------ natural gradient
@pytest.mark.parametrize('name', FAMILIES)
def test_natural_gradient_is_mean_gradient(name):
    q, p = fam(name, 1), fam(name, 9)
    cls = type(q)
    L = lambda r: float(np.sum(r.kl(p)) + np.sum(np.sin(r.mean_vec)))
    g_lam = _fd_grad(lambda l: L(cls.from_nat_vec(l)), q.nat_vec)
    g_mu = _fd_grad(lambda m: L(cls.from_mean_vec(m)), q.mean_vec)
    ng = natural_gradient(q, g_lam)
    assert ng.shape == q.nat_vec.shape
    assert np.abs(ng - g_mu).max() < 1e-5 * np.abs(g_mu).max()


@pytest.mark.parametrize('name', ['MvNormal', 'Gamma', 'Dirichlet'])
def test_natural_gradient_damping(name):
    q = fam(name)
    g = np.random.default_rng(0).standard_normal(q.nat_vec.shape)
    F = q.fisher() + 0.5 * np.eye(q.nat_size)
    np.testing.assert_allclose(natural_gradient(q, g, damping=0.5), np.linalg.solve(F, g[..., None])[..., 0], rtol=1e-9)
    with pytest.raises(ValueError, match='`grad_nat`'):
        natural_gradient(q, np.ones(q.nat_size + 2))


# ------------------------------------------------------------------ Gaussian coordinates
def _gauss(D, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((D, D))
    return rng.standard_normal(D), A @ A.T / D + 0.5 * np.eye(D)


@pytest.mark.parametrize('D', [1, 2, 3])
@pytest.mark.parametrize('coords', GAUSSIAN_COORDS)
def test_gaussian_coords_round_trip(D, coords):
    m, S = _gauss(D)
    th = gaussian_to_coords(m, S, coords)
    assert th.shape == (D * (D + 3) // 2,)
    m2, S2 = gaussian_from_coords(th, D, coords)
    np.testing.assert_allclose(m2, m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(S2, S, rtol=1e-10, atol=1e-12)
    dm, dS = gaussian_tangents(m, S, coords)
    J = _jac(lambda t: np.concatenate([a.ravel() for a in gaussian_from_coords(t, D, coords)]), th)
    np.testing.assert_allclose(J, np.concatenate([dm.T, dS.reshape(len(th), -1).T]), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('D', [1, 2, 3])
def test_gaussian_fisher_natural_equals_family_fisher(D):
    m, S = _gauss(D, 1)
    np.testing.assert_allclose(gaussian_fisher(m, S, 'natural'), MvNormal(m, S).fisher(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize('D', [1, 2, 3])
@pytest.mark.parametrize('coords', ['moment', 'chol'])
def test_gaussian_fisher_transforms_by_jacobian(D, coords):
    m, S = _gauss(D, 2)
    th = gaussian_to_coords(m, S, coords)
    J = _jac(lambda t: gaussian_to_coords(*gaussian_from_coords(t, D, coords), 'natural'), th)
    F = gaussian_fisher(m, S, coords)
    np.testing.assert_allclose(J.T @ gaussian_fisher(m, S, 'natural') @ J, F, rtol=1e-6, atol=1e-7 * np.abs(F).max())
    np.testing.assert_allclose(F[:D, :D], np.linalg.inv(S), rtol=1e-10)
    np.testing.assert_allclose(F[:D, D:], 0, atol=1e-12)


@pytest.mark.parametrize('coords', GAUSSIAN_COORDS)
def test_gaussian_kl_grad_matches_fd(coords):
    m, S = _gauss(3, 3); mp, Sp = _gauss(3, 4)
    p = MvNormal(mp, Sp)
    th = gaussian_to_coords(m, S, coords)
    g_fd = _fd_grad(lambda t: MvNormal(*gaussian_from_coords(t, 3, coords)).kl(p), th)
    np.testing.assert_allclose(gaussian_kl_grad(m, S, mp, p.prec, coords), g_fd, rtol=1e-6, atol=1e-8)


def test_bad_coords_raise():
    m, S = _gauss(2)
    with pytest.raises(ValueError, match='`coords`'):
        gaussian_fisher(m, S, 'polar')


def test_natural_gradient_paths_are_invariant():
    m_p, S_p = np.array([1.0, 0.0]), np.array([[1.0, 0.8], [0.8, 1.0]])
    P = np.linalg.inv(S_p); m0, S0 = np.array([-2.0, 2.0]), np.diag([0.3, 2.0])
    def gap(step, n, natural):
        out = [gaussian_kl_flow(m0, S0, m_p, P, c, step, n, natural) for c in GAUSSIAN_COORDS]
        curve = lambda r: np.concatenate([r[0], r[1].reshape(len(r[1]), -1)], 1)
        return max(np.abs(curve(a) - curve(b)).max() for a in out for b in out)
    g1, g2 = gap(0.02, 50, True), gap(0.01, 100, True)
    assert g1 < 0.1 and 1.5 < g1 / g2 < 2.5              # same curve up to O(step)
    assert gap(0.01, 100, False) > 0.3                   # Euclidean steps disagree


def test_flow_rejects_step_leaving_cone():
    with pytest.raises(ValueError, match='`step`'):
        gaussian_kl_flow(np.zeros(2), np.eye(2) * 0.1, np.ones(2), np.eye(2) * 50, 'moment', 1.0, 20, natural=False)
