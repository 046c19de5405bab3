"""Tests for ngvi_lit.quadrature: closed forms, quad references, Bonnet/Price consistency, input checks."""
import warnings
import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sc
from ngvi_lit.quadrature import (gauss_expect, expect_logistic, expect_probit, expect_poisson, expect_gaussian,
                                 loglik_logistic, loglik_probit, loglik_poisson, loglik_gaussian,
                                 glm_likelihood, glm_expect, glm_loglik, Lik1D)

SQ2PI = np.sqrt(2 * np.pi)


def quad_ref(fn, m, s, brk=0.):
    "E[fn(eta)], eta ~ N(m, s^2), by adaptive quadrature in the standardised variable, break point at `brk`."
    z0 = (brk - m) / s
    g = lambda z: fn(m + s * z) * np.exp(-z * z / 2) / SQ2PI
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', si.IntegrationWarning)
        return si.quad(g, -13, 13, points=[z0] if -13 < z0 < 13 else None, epsabs=1e-15, epsrel=1e-14, limit=500)[0]


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b) / np.maximum(1., np.abs(b)))


def sample_ms(seed, n, mlo=-50, mhi=50, slo=-3, shi=2):
    rng = np.random.default_rng(seed)
    return rng.uniform(mlo, mhi, n), 10 ** rng.uniform(slo, shi, n), rng.integers(0, 2, n).astype(float)


LIKS = {'logistic': loglik_logistic, 'probit': loglik_probit}
EXPS = {'logistic': expect_logistic, 'probit': expect_probit}


# ---------------------------------------------------------------- closed forms
def test_gaussian_moments_closed_form():
    m, s, _ = sample_ms(0, 300)
    e1, e2, e3 = gauss_expect(lambda t: (t, t * t, t ** 3), m, s)
    assert rel_err(e1, m) < 1e-10
    assert rel_err(e2, m * m + s * s) < 1e-10
    assert rel_err(e3, m ** 3 + 3 * m * s * s) < 1e-10


def test_exp_moment_closed_form():
    m, s, _ = sample_ms(1, 300, -20, 20, -3, np.log10(2.))
    assert rel_err(gauss_expect(np.exp, m, s) / np.exp(m + s * s / 2), 1.) < 1e-10


@pytest.mark.parametrize('y', [0., 1., 2., 7.])
def test_poisson_closed_form_vs_rule(y):
    m, s, _ = sample_ms(2, 200, -5, 5, -3, np.log10(2.))
    exact = np.stack(expect_poisson(y, m, s))
    rule = np.stack(gauss_expect(lambda t: loglik_poisson(y, t), m, s))
    assert rel_err(rule, exact) < 1e-10
    assert rel_err(exact[0], y * m - np.exp(m + s * s / 2) - sc.gammaln(y + 1)) < 1e-14


@pytest.mark.parametrize('noise_sd', [0.3, 1., 4.])
def test_gaussian_lik_closed_form_vs_rule(noise_sd):
    m, s, _ = sample_ms(3, 200)
    y = np.random.default_rng(4).normal(0, 10, 200)
    exact = np.stack(expect_gaussian(y, m, s, noise_sd))
    rule = np.stack(gauss_expect(lambda t: loglik_gaussian(y[:, None], t, noise_sd), m, s))
    assert rel_err(rule, exact) < 1e-10


def test_probit_mean_of_Phi_closed_form():
    m, s, _ = sample_ms(5, 300)
    assert rel_err(gauss_expect(sc.ndtr, m, s), sc.ndtr(m / np.sqrt(1 + s * s))) < 1e-10


# ---------------------------------------------------------------- logistic / probit against quad
@pytest.mark.parametrize('name', ['logistic', 'probit'])
def test_against_quad_fast(name):
    m, s, y = sample_ms(10, 40)
    got = np.stack(EXPS[name](y, m, s), 1)
    ref = np.array([[quad_ref(lambda t, k=k: LIKS[name](yy, t)[k], mm, ss) for k in range(3)]
                    for yy, mm, ss in zip(y, m, s)])
    assert rel_err(got, ref) < 1e-10


def test_logistic_near_kink_and_extremes():
    "Hand-picked hard cases: at the kink, tiny and huge sd, far tails."
    cases = [(0., 1e-3), (0., 100.), (1e-3, 1e-3), (-50., 1e-3), (50., 100.), (-50., 100.), (0.5, 30.), (-3., 40.)]
    for y in (0., 1.):
        for m, s in cases:
            got = expect_logistic(y, m, s)
            for k in range(3):
                ref = quad_ref(lambda t: loglik_logistic(y, t)[k], m, s)
                assert rel_err(got[k], ref) < 1e-10, (y, m, s, k)


def test_generic_rule_logistic_matches_special_rule():
    m, s, y = sample_ms(11, 2000)
    a = np.stack(expect_logistic(y, m, s))
    b = np.stack(gauss_expect(lambda t: loglik_logistic(y[:, None], t), m, s))
    assert rel_err(a, b) < 1e-10


GENERIC_CASES = {  # integrand, split (its transition), scale (the transition's width)
    'log sigmoid': (lambda t: -np.logaddexp(0., -t), 0., 1.),
    'sigmoid': (sc.expit, 0., 1.),
    'softplus(t - 3)': (lambda t: np.logaddexp(0., t - 3.), 3., 1.),
    '|t + 2|': (lambda t: np.abs(t + 2.), -2., 1.),
    'relu(t)^2': (lambda t: np.maximum(t, 0.) ** 2, 0., 1.),
    'tanh(t / 5)': (lambda t: np.tanh(t / 5.), 0., 5.),
    'log cosh t': (lambda t: np.logaddexp(t, -t) - np.log(2.), 0., 1.),
    'exp(-t^2 / 8)': (lambda t: np.exp(-t * t / 8.), 0., 2.),
}


@pytest.mark.parametrize('case', list(GENERIC_CASES))
@pytest.mark.parametrize('rowwise', [True, False])
def test_gauss_expect_direct_against_quad(case, rowwise):
    "The general rule itself (not through expect_logistic) against quad, smooth and kinked f, over a (mean, sd) grid."
    f, c, w = GENERIC_CASES[case]
    M, S = [a.ravel() for a in np.meshgrid(np.linspace(-50, 50, 11), np.logspace(-3, 2, 11), indexing='ij')]
    got = gauss_expect(f, M, S, split=c, scale=w, rowwise=rowwise)
    ref = np.array([quad_ref(f, m, s, c) for m, s in zip(M, S)])
    assert rel_err(got, ref) < 1e-12


@pytest.mark.slow
@pytest.mark.parametrize('name', ['logistic', 'probit'])
def test_against_quad_big_sweep(name):
    ms, ss = np.linspace(-50, 50, 21), np.logspace(-3, 2, 21)
    M, S = [a.ravel() for a in np.meshgrid(ms, ss, indexing='ij')]
    for y in (0., 1.):
        got = np.stack(EXPS[name](y, M, S), 1)
        ref = np.array([[quad_ref(lambda t, k=k: LIKS[name](y, t)[k], mm, sd) for k in range(3)] for mm, sd in zip(M, S)])
        assert rel_err(got, ref) < 1e-10


def test_gauss_hermite_fails_where_default_holds():
    "The reason for the default rule: GH-100 is off by > 1e-4 at s = 30, the default by < 1e-10."
    ref = quad_ref(lambda t: loglik_logistic(1., t)[0], 2., 30.)
    gh = gauss_expect(lambda t: loglik_logistic(1., t)[0], 2., 30., rule='gh', n=100)
    assert abs(gh - ref) > 1e-4
    assert abs(expect_logistic(1., 2., 30.)[0] - ref) < 1e-10


# ---------------------------------------------------------------- Bonnet / Price in 1-D
@pytest.mark.parametrize('name', ['logistic', 'probit', 'poisson', 'gaussian'])
def test_bonnet_price_finite_differences(name):
    rng = np.random.default_rng(12)
    m, s = rng.uniform(-4, 4, 30), 10 ** rng.uniform(-1, .3, 30)
    y = rng.integers(0, 2, 30).astype(float) if name in ('logistic', 'probit') else rng.poisson(2., 30).astype(float)
    E = glm_likelihood(name).expect
    f, f1, f2 = E(y, m, s)
    h = 1e-4
    dmu = (E(y, m + h, s)[0] - E(y, m - h, s)[0]) / (2 * h)
    hv = 1e-4 * s * s
    dvar = (E(y, m, np.sqrt(s * s + hv))[0] - E(y, m, np.sqrt(s * s - hv))[0]) / (2 * hv)
    scale = np.maximum(1., np.abs(f1))
    assert np.max(np.abs(dmu - f1) / scale) < 1e-6
    assert np.max(np.abs(dvar - f2 / 2) / np.maximum(1., np.abs(f2))) < 1e-6


# ---------------------------------------------------------------- pointwise likelihoods
@pytest.mark.parametrize('name', ['logistic', 'probit', 'poisson', 'gaussian'])
def test_pointwise_derivatives(name):
    eta = np.linspace(-6, 6, 25)
    for y in ((0., 1.) if name in ('logistic', 'probit') else (0., 3.)):
        f, f1, f2 = glm_loglik(name, y, eta)
        h = 1e-5
        fp, f1p, _ = glm_loglik(name, y, eta + h)
        fm, f1m, _ = glm_loglik(name, y, eta - h)
        assert np.allclose((fp - fm) / (2 * h), f1, rtol=1e-6, atol=1e-6)
        assert np.allclose((f1p - f1m) / (2 * h), f2, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('name', ['logistic', 'probit'])
def test_pointwise_stable_at_large_eta(name):
    eta = np.array([-1e4, -1e3, -50., 50., 1e3, 1e4])
    for y in (0., 1.):
        out = glm_loglik(name, y, eta)
        assert all(np.all(np.isfinite(o)) for o in out)
        f, f1, f2 = out
        assert np.all(f <= 0) and np.all(f2 <= 0) and np.all(f2 >= -1 - 1e-6)
    f, f1, f2 = glm_loglik('logistic', 1., eta)
    assert np.allclose(f[:2], eta[:2]) and np.allclose(f1[:2], 1.)
    f, f1, f2 = glm_loglik('probit', 1., eta)
    assert np.allclose(f1[:2], -eta[:2], rtol=1e-5)          # Mills ratio ~ |t| in the far tail


def test_expectations_stable_extreme_inputs():
    m = np.array([-1e3, 1e3, 0., -1e4])
    s = np.array([1e3, 1e-3, 1e4, 1.])
    for name in ('logistic', 'probit'):
        for y in (0., 1.):
            out = glm_expect(name, y, m, s)
            assert all(np.all(np.isfinite(o)) for o in out), name


# ---------------------------------------------------------------- API behaviour
def test_shapes_scalars_and_tuple():
    assert np.ndim(gauss_expect(np.sin, 0.3, 0.2)) == 0
    assert gauss_expect(np.sin, np.zeros((2, 3)), np.ones((2, 3))).shape == (2, 3)
    a, b = gauss_expect(lambda t: (t, t * t), [0., 1.], [1., 2.])
    assert a.shape == b.shape == (2,)
    assert all(o.shape == (4, 5) for o in expect_logistic(1., np.zeros((4, 5)), np.ones(5)))


def test_zero_sd_is_point_evaluation():
    m = np.array([-2., 0., 3.])
    for name in ('logistic', 'probit', 'poisson', 'gaussian'):
        lik = glm_likelihood(name)
        got, want = lik.expect(1., m, 0.), lik.loglik(1., m)
        assert all(np.allclose(g, w, rtol=1e-12, atol=1e-14) for g, w in zip(got, want)), name


def test_gh_rule_and_n():
    assert abs(gauss_expect(lambda t: t ** 4, 0., 1., rule='gh', n=5) - 3.) < 1e-12
    assert abs(gauss_expect(lambda t: t ** 4, 0., 1.) - 3.) < 1e-10 and abs(gauss_expect(lambda t: t ** 4, 0., 1., n=64) - 3.) < 1e-10


def test_rowwise_false_same_answer():
    m, s, _ = sample_ms(13, 500)
    f = lambda t: loglik_probit(1., t)
    a = np.stack(gauss_expect(f, m, s)); b = np.stack(gauss_expect(f, m, s, rowwise=False))
    assert rel_err(a, b) < 1e-14


def test_poisson_overflow_is_minus_inf_not_nan():
    out = expect_poisson(2., 0., 100.)
    assert all(np.isneginf(o) for o in out)


def test_lik1d_registry():
    for name in ('logistic', 'probit', 'poisson', 'gaussian'):
        lik = glm_likelihood(name)
        assert isinstance(lik, Lik1D) and lik.name == name
    g = glm_likelihood('gaussian', noise_sd=2.)
    assert np.isclose(g.expect(0., 0., 0.)[2], -.25)


@pytest.mark.parametrize('call, arg', [
    (lambda: gauss_expect(np.sin, 0., -1.), '`sd`'),
    (lambda: gauss_expect(np.sin, [0., 1.], [1., 1., 1.]), '`mean`'),
    (lambda: gauss_expect(np.sin, np.nan, 1.), '`mean`'),
    (lambda: gauss_expect(np.sin, 0., 1., rule='simpson'), '`rule`'),
    (lambda: gauss_expect(np.sin, 0., 1., n=1), '`n`'),
    (lambda: gauss_expect(np.sin, 0., 1., scale=0.), '`scale`'),
    (lambda: expect_logistic(2., 0., 1.), '`y`'),
    (lambda: expect_probit(0.5, 0., 1.), '`y`'),
    (lambda: expect_poisson(-1., 0., 1.), '`y`'),
    (lambda: expect_logistic(1., 0., -1.), '`sd`'),
    (lambda: glm_likelihood('cauchy'), '`name`'),
    (lambda: glm_likelihood('gaussian', noise_sd=0.), '`noise_sd`'),
])
def test_bad_input_names_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


@pytest.mark.parametrize('name', ['logistic', 'probit'])
def test_wide_rows_shared_panel_rule_matches_graded_rule(name):
    "Rows with s >= 1 (shared nodes per sd octave x mean cell) against the graded rule, at octave edges and far means."
    rng = np.random.default_rng(21)
    m = np.concatenate([rng.uniform(-60, 60, 300), [-400., 400., 0., 0., 3., -3.]])
    s = np.concatenate([10 ** rng.uniform(0, 2, 300), [2., 2., 1., 2 * (1 - 1e-12), 4., 64.]])
    y = rng.integers(0, 2, m.size).astype(float)
    ref = gauss_expect(lambda t: LIKS[name](y[:, None], t), m, s, n=150)
    assert rel_err(np.stack(EXPS[name](y, m, s)), np.stack(ref)) < 5e-11
