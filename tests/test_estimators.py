"""Tests for ngvi_lit.estimators: unbiasedness within standard errors, variance ordering, input checks."""
import numpy as np
import pytest
import scipy.special as sc
from ngvi_lit.estimators import (Estimate, normal_draws, reparam_grad, score_grad, gauss_sampler, gauss_score_mean,
                                 bonnet_price, stein_hessian, fisher_weight, expected_ggn, QMC_BLOCKS)
from ngvi_lit.quadrature import expect_logistic, expect_probit

DRAWS = ['iid', 'antithetic', 'qmc']


def gauss_target(D, seed=0):
    r = np.random.default_rng(seed)
    B = r.normal(size=(D, D)); P = B @ B.T / D + np.eye(D); mu = r.normal(size=D)
    f = lambda z: -.5 * np.einsum('ni,ij,nj->n', z - mu, P, z - mu)
    g = lambda z: -(z - mu) @ P
    h = lambda z: np.broadcast_to(-P, (len(z), D, D))
    return f, g, h, mu, P


def q_params(D, seed=1):
    r = np.random.default_rng(seed)
    A = r.normal(size=(D, D)) * .3
    return r.normal(size=D) * .5, np.linalg.cholesky(A @ A.T + .3 * np.eye(D))


def logistic(D=5, N=60, seed=2):
    r = np.random.default_rng(seed)
    X = r.normal(size=(N, D)); y = r.integers(0, 2, N).astype(float)
    f = lambda z: -np.logaddexp(0., -(2 * y - 1) * (z @ X.T)).sum(1)
    g = lambda z: (y - sc.expit(z @ X.T)) @ X
    h = lambda z: -np.einsum('nk,kd,ke->nde', sc.expit(z @ X.T) * sc.expit(-z @ X.T), X, X)
    return X, y, f, g, h


def exact_logistic(X, y, m, L):
    S = L @ L.T
    mu, sd = X @ m, np.sqrt(np.einsum('nd,de,ne->n', X, S, X))
    _, e1, e2 = expect_logistic(y, mu, sd)
    return X.T @ e1, (X * e2[:, None]).T @ X


def within(est: Estimate, exact, k=None):
    "All entries within k standard errors; QMC errors come from 8 blocks (t with 7 dof), hence a wider k."
    k = k or (8. if est.n == QMC_BLOCKS else 4.5)
    se = np.asarray(est.stderr); d = np.abs(np.asarray(est.value) - exact)
    return np.all((d < k * se) | (d < 1e-10))


# ---------------------------------------------------------------- draws
@pytest.mark.parametrize('draws', DRAWS)
def test_normal_draws_moments(draws):
    e = normal_draws(np.random.default_rng(0), 4096, 3, draws)
    assert e.shape == (4096, 3)
    assert np.all(np.abs(e.mean(0)) < 4.5 / np.sqrt(4096))
    assert np.allclose(np.cov(e.T), np.eye(3), atol=.1)
    if draws == 'antithetic': assert np.allclose(e[:2048], -e[2048:])


# ---------------------------------------------------------------- reparameterisation
@pytest.mark.parametrize('draws', DRAWS)
@pytest.mark.parametrize('seed', [0, 1])
def test_reparam_gaussian_target(draws, seed):
    D = 4
    f, g, h, mu, P = gauss_target(D, seed)
    m, L = q_params(D, seed + 10)
    est = reparam_grad(g, m, L, np.random.default_rng(seed), 1024, draws)
    assert within(est.grad_m, -P @ (m - mu))
    iu = np.tril_indices(D)
    assert within(Estimate(est.grad_L.value[iu], est.grad_L.stderr[iu], est.grad_L.n), (-np.tril(P @ L))[iu])
    if draws == 'antithetic':                            # linear gradient: the pair mean is exact
        assert np.allclose(est.grad_m.value, -P @ (m - mu)) and est.grad_m.stderr.max() < 1e-10


@pytest.mark.parametrize('draws', DRAWS)
def test_reparam_logistic_vs_quadrature(draws):
    X, y, f, g, h = logistic()
    m, L = q_params(X.shape[1], 3)
    est = reparam_grad(g, m, L, np.random.default_rng(4), 2048, draws)
    assert within(est.grad_m, exact_logistic(X, y, m, L)[0])


# ---------------------------------------------------------------- score function
@pytest.mark.parametrize('cv', ['none', 'baseline', 'optimal'])
def test_score_function_unbiased(cv):
    X, y, f, g, h = logistic()
    m, L = q_params(X.shape[1], 5)
    est = score_grad(f, gauss_sampler(m, L), gauss_score_mean(m, L), np.random.default_rng(6), 20_000, cv)
    assert within(est, exact_logistic(X, y, m, L)[0])


def test_score_function_variance_ordering():
    "none > baseline >= optimal (up to noise) > reparam > antithetic reparam, on a logistic posterior-like q."
    X, y, f, g, h = logistic(D=8, N=100)
    m, L = q_params(8, 7)
    f2 = lambda z: f(z) - 50.                           # a level offset, as log joints have
    r = np.random.default_rng(8)
    K = 8000
    v = {cv: np.sum(score_grad(f2, gauss_sampler(m, L), gauss_score_mean(m, L), r, K, cv).stderr ** 2)
         for cv in ('none', 'baseline', 'optimal')}
    v['reparam'] = np.sum(reparam_grad(g, m, L, r, K).grad_m.stderr ** 2)
    v['antithetic'] = np.sum(reparam_grad(g, m, L, r, K, 'antithetic').grad_m.stderr ** 2)
    assert v['none'] > 10 * v['baseline']
    assert v['optimal'] < 1.1 * v['baseline']
    assert v['reparam'] < v['optimal'] and v['antithetic'] < v['reparam']


def test_rao_blackwellisation_unbiased_and_better():
    rng = np.random.default_rng(9)
    D = 12
    mc, vc = rng.normal(size=D), .2 + rng.uniform(size=D)
    deps = np.zeros((2 * D - 1, D), bool)
    for j in range(D - 1): deps[j, [j, j + 1]] = True
    for j in range(D): deps[D - 1 + j, j] = True
    terms = lambda z: np.concatenate([np.cos(z[:, :-1] - z[:, 1:]), -z ** 2 / 2], 1)
    dE = -np.sin(mc[:-1] - mc[1:]) * np.exp(-(vc[:-1] + vc[1:]) / 2)
    exact = -mc.copy(); exact[:-1] += dE; exact[1:] -= dE
    samp = lambda r, n: mc + np.sqrt(vc) * r.standard_normal((n, D))
    score = lambda z: (z - mc) / vc
    plain = score_grad(lambda z: terms(z).sum(1), samp, score, rng, 10_000)
    rb = score_grad(terms, samp, score, rng, 10_000, deps=deps, param_coord=np.arange(D))
    assert within(plain, exact) and within(rb, exact)
    assert np.sum(rb.stderr ** 2) < np.sum(plain.stderr ** 2) / 2


def test_score_function_other_family_bernoulli():
    "Works for a discrete family: d/dp E_Bern(p)[f(z)] = f(1) - f(0)."
    p = .3
    samp = lambda r, n: (r.uniform(size=n) < p).astype(float)
    score = lambda z: ((z - p) / (p * (1 - p)))[:, None]
    f = lambda z: np.where(z > 0, 2.5, -1.)
    est = score_grad(f, samp, score, np.random.default_rng(10), 20_000, 'optimal')
    assert within(est, np.array([3.5]))


# ---------------------------------------------------------------- Bonnet / Price / Stein
@pytest.mark.parametrize('draws', DRAWS)
def test_bonnet_price_logistic(draws):
    X, y, f, g, h = logistic()
    m, L = q_params(X.shape[1], 11)
    eg, eh = exact_logistic(X, y, m, L)
    gh = bonnet_price(g, h, m, L, np.random.default_rng(12), 2048, draws)
    assert within(gh.grad, eg) and within(gh.hess, eh)


@pytest.mark.parametrize('draws', DRAWS)
@pytest.mark.parametrize('center', [True, False])
def test_stein_hessian_logistic(draws, center):
    X, y, f, g, h = logistic()
    m, L = q_params(X.shape[1], 13)
    est = stein_hessian(g, m, L, np.random.default_rng(14), 8192, draws, center)
    assert within(est, exact_logistic(X, y, m, L)[1])
    assert np.allclose(est.value, est.value.T)


def test_stein_gaussian_target_and_price_exact():
    D = 5
    f, g, h, mu, P = gauss_target(D, 3)
    m, L = q_params(D, 15)
    assert within(stein_hessian(g, m, L, np.random.default_rng(16), 4000), -P)
    gh = bonnet_price(g, h, m, L, np.random.default_rng(17), 100)
    assert np.allclose(gh.hess.value, -P) and gh.hess.stderr.max() < 1e-12


def test_price_beats_stein_variance():
    X, y, f, g, h = logistic()
    m, L = q_params(X.shape[1], 18)
    r = np.random.default_rng(19)
    vp = np.sum(bonnet_price(g, h, m, L, r, 2000).hess.stderr ** 2)
    vs = np.sum(stein_hessian(g, m, L, r, 2000).stderr ** 2)
    assert vp < vs


def test_stein_centering_helps_far_from_optimum():
    "Far from the optimum grad f(m) dominates; subtracting it reduces the variance."
    D = 4
    f, g, h, mu, P = gauss_target(D, 4)
    m, L = mu + 20., np.eye(D) * .3
    r = np.random.default_rng(20)
    v_raw = np.sum(stein_hessian(g, m, L, r, 4000, center=False).stderr ** 2)
    v_cen = np.sum(stein_hessian(g, m, L, r, 4000).stderr ** 2)
    assert v_cen < v_raw / 10


# ---------------------------------------------------------------- GGN
def test_ggn_logistic_equals_neg_expected_hessian():
    X, y, f, g, h = logistic()
    m, L = q_params(X.shape[1], 21)
    assert np.allclose(expected_ggn('logistic', X, m, L @ L.T), -exact_logistic(X, y, m, L)[1], atol=1e-12)


@pytest.mark.parametrize('name', ['logistic', 'probit', 'poisson', 'gaussian'])
def test_ggn_psd_and_mc(name):
    rng = np.random.default_rng(22)
    X = rng.normal(size=(40, 3)) * .5
    m, L = q_params(3, 23)
    G = expected_ggn(name, X, m, L @ L.T)
    assert np.linalg.eigvalsh(G).min() > -1e-12
    z = m + normal_draws(rng, 20_000, 3) @ L.T
    W = fisher_weight(name, z @ X.T)                           # (K, N)
    units = np.einsum('kn,nd,ne->kde', W, X, X)
    est = Estimate(units.mean(0), units.std(0, ddof=1) / np.sqrt(len(z)), len(z))
    assert within(est, G)


def test_probit_fisher_weight_by_hand():
    t = np.linspace(-30, 30, 61)
    r = lambda t: np.sqrt(2 / np.pi) / sc.erfcx(-t / np.sqrt(2))
    by_hand = sc.ndtr(t) * r(t) * (t + r(t)) + sc.ndtr(-t) * r(-t) * (-t + r(-t))
    assert np.allclose(fisher_weight('probit', t), by_hand, rtol=1e-6)
    assert np.all(np.isfinite(fisher_weight('probit', np.array([-1e3, 1e3]))))


# ---------------------------------------------------------------- input checks
@pytest.mark.parametrize('call, arg', [
    (lambda: normal_draws(np.random.default_rng(0), 3, 2, 'antithetic'), '`n`'),
    (lambda: normal_draws(np.random.default_rng(0), 100, 2, 'qmc'), '`n`'),
    (lambda: normal_draws(np.random.default_rng(0), 8, 2, 'sobol'), '`draws`'),
    (lambda: reparam_grad(lambda z: z, np.zeros(2), np.ones((2, 2)), np.random.default_rng(0)), '`L`'),
    (lambda: reparam_grad(lambda z: z[:, :1], np.zeros(2), np.eye(2), np.random.default_rng(0)), 'grad_f'),
    (lambda: score_grad(lambda z: z[:, 0], gauss_sampler(np.zeros(2), np.eye(2)), gauss_score_mean(np.zeros(2), np.eye(2)),
                        np.random.default_rng(0), 10, cv='best'), '`cv`'),
    (lambda: score_grad(lambda z: z, gauss_sampler(np.zeros(2), np.eye(2)), gauss_score_mean(np.zeros(2), np.eye(2)),
                        np.random.default_rng(0), 10), '`f`'),
    (lambda: score_grad(lambda z: z, gauss_sampler(np.zeros(2), np.eye(2)), gauss_score_mean(np.zeros(2), np.eye(2)),
                        np.random.default_rng(0), 10, deps=np.ones((2, 2), bool)), '`param_coord`'),
    (lambda: fisher_weight('cauchy', 0.), '`name`'),
    (lambda: expected_ggn('logistic', np.ones((3, 2)), np.zeros(3), np.eye(2)), '`m`'),
])
def test_bad_input_names_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_rng_must_be_generator():
    with pytest.raises(TypeError, match='rng'):
        reparam_grad(lambda z: z, np.zeros(2), np.eye(2), 0)
