"""Tests for ngvi_lit.diagnostics: ELBO estimates vs closed forms, convergence tests, stability, ESS."""
import numpy as np
import pytest
from ngvi_lit.diagnostics import (gauss_kl, gauss_entropy, ElboEstimate, elbo_estimate, elbo_difference,
                                  elbo_converged, ConvergenceCheck, param_change, run_spread,
                                  importance_ess, importance_diagnostics)


def logpdf(z, m, cov):
    L = np.linalg.cholesky(cov)
    r = np.linalg.solve(L, (np.atleast_2d(z) - m).T)
    return -.5 * (r * r).sum(0) - np.log(np.diag(L)).sum() - .5 * len(m) * np.log(2 * np.pi)


def random_gauss(rng, D):
    B = rng.normal(size=(D, D))
    return rng.normal(size=D), B @ B.T / D + .5 * np.eye(D)


@pytest.mark.parametrize('D', [1, 3, 8])
def test_gauss_kl_matches_monte_carlo(D):
    rng = np.random.default_rng(D)
    (m0, c0), (m1, c1) = random_gauss(rng, D), random_gauss(rng, D)
    z = rng.multivariate_normal(m0, c0, size=100_000)
    d = logpdf(z, m0, c0) - logpdf(z, m1, c1)
    assert abs(d.mean() - gauss_kl(m0, c0, m1, c1)) < 4 * d.std() / np.sqrt(z.shape[0])
    assert gauss_kl(m0, c0, m0, c0) == pytest.approx(0., abs=1e-12)


def test_gauss_entropy_closed_form():
    c = np.diag([1., 4., 9.])
    assert gauss_entropy(c) == pytest.approx(1.5 * np.log(2 * np.pi * np.e) + np.log(6.))


def test_gauss_helpers_are_mvnormal_on_arrays():
    from ngvi_lit.families import MvNormal
    rng = np.random.default_rng(5)
    (m0, c0), (m1, c1) = random_gauss(rng, 4), random_gauss(rng, 4)
    assert gauss_kl(m0, c0, m1, c1) == MvNormal(m0, c0).kl(MvNormal(m1, c1))
    assert gauss_entropy(c0) == MvNormal(m0, c0).entropy()


@pytest.mark.parametrize('use_entropy', [False, True])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_elbo_estimate_unbiased(use_entropy, seed):
    rng = np.random.default_rng(seed)
    D = 5
    mp, cp = random_gauss(rng, D)
    mq, cq = mp + .4 * rng.normal(size=D), np.diag(np.diag(cp))
    logZ = -2.3
    exact = logZ - gauss_kl(mq, cq, mp, cp)
    z = rng.multivariate_normal(mq, cq, size=3000)
    lj = lambda z: logZ + logpdf(z, mp, cp)
    est = (elbo_estimate(lj, z, entropy=gauss_entropy(cq)) if use_entropy
           else elbo_estimate(lj(z), log_q=logpdf(z, mq, cq)))
    assert isinstance(est, ElboEstimate) and est.n == 3000
    assert abs(est.elbo - exact) < 4 * est.stderr


def test_elbo_stderr_is_calibrated():
    "Over many repetitions, the reported stderr matches the spread of the estimates."
    rng = np.random.default_rng(3)
    mp, cp = np.zeros(2), np.eye(2)
    mq, cq = np.ones(2) * .5, np.eye(2) * .5
    ests = []
    for _ in range(300):
        z = rng.multivariate_normal(mq, cq, size=200)
        ests.append(elbo_estimate(logpdf(z, mp, cp), log_q=logpdf(z, mq, cq)))
    vals, ses = np.array([e.elbo for e in ests]), np.array([e.stderr for e in ests])
    ratio = vals.std(ddof=1) / np.sqrt((ses ** 2).mean())
    assert abs(ratio - 1) < 4 / np.sqrt(2 * 299)


def test_elbo_zero_variance_at_optimum():
    rng = np.random.default_rng(4)
    m, c = random_gauss(rng, 3)
    z = rng.multivariate_normal(m, c, size=500)
    est = elbo_estimate(lambda z: 7. + logpdf(z, m, c), z, log_q=lambda z: logpdf(z, m, c))
    assert est.elbo == pytest.approx(7., abs=1e-10) and est.stderr < 1e-10


def test_elbo_difference():
    d, se = elbo_difference(ElboEstimate(1., .3, 10), ElboEstimate(2., .4, 10))
    assert d == 1. and se == pytest.approx(.5)


def test_converged_false_alarm_rate_on_flat_noise():
    rng = np.random.default_rng(5)
    R, w = 3000, 5
    rate = np.mean([elbo_converged(rng.normal(0, 1, 2 * w), np.ones(2 * w), window=w).converged for _ in range(R)])
    assert .954 - 4 * np.sqrt(.954 * .046 / R) < rate < .99


def test_converged_detects_trend():
    rng = np.random.default_rng(6)
    for _ in range(50):
        tr = np.arange(10) * 1. + rng.normal(0, .1, 10)          # slope 1 per step, noise 0.1
        assert not elbo_converged(tr, np.full(10, .1), window=5).converged


def test_converged_noise_free_uses_tolerance():
    tr = -10 + np.exp(-np.arange(40.))
    chk = elbo_converged(tr, None, window=5, atol=1e-8)
    assert isinstance(chk, ConvergenceCheck) and chk.converged
    assert not elbo_converged(-10 + np.exp(-np.arange(12.) / 5), None, window=5, atol=1e-8).converged


def test_converged_too_short():
    chk = elbo_converged([1., 2., 3.], window=5)
    assert not chk.converged and np.isnan(chk.delta)


def test_param_change_kl_quadratic_form():
    rng = np.random.default_rng(7)
    m, c = random_gauss(rng, 4)
    dm = 1e-3 * rng.normal(size=4)
    pc = param_change(m, c, m + dm, c)
    assert pc.kl == pytest.approx(.5 * dm @ np.linalg.solve(c, dm), rel=1e-8)
    assert pc.cov_rel == 0.
    pc0 = param_change(m, c, m, c)
    assert pc0.kl == pytest.approx(0, abs=1e-14) and pc0.mean_rel == 0.


@pytest.mark.parametrize('cov_kind', ['full', 'diag'])
def test_run_spread_recovers_known_jitter(cov_kind):
    rng = np.random.default_rng(8)
    D, R = 3, 500
    sd = np.array([.5, 1., 2.])
    means = 1. + .1 * sd * rng.normal(size=(R, D))
    covs = np.broadcast_to(np.diag(sd ** 2), (R, D, D)) if cov_kind == 'full' else np.broadcast_to(sd ** 2, (R, D))
    sp = run_spread(means, covs)
    assert np.allclose(sp.ratio, .1, rtol=4 / np.sqrt(2 * (R - 1)))
    assert np.allclose(sp.posterior_sd, sd) and sp.max_ratio == sp.ratio.max()


@pytest.mark.parametrize('s2', [.8, 1., 2.])
def test_ess_limit(s2):
    rng = np.random.default_rng(9)
    K = 200_000
    x = rng.normal(0, np.sqrt(s2), K)
    lw = (-.5 * x ** 2) - (-.5 * x ** 2 / s2 - .5 * np.log(s2))
    w = np.exp(lw)
    a, b = w.mean(), (w * w).mean()
    g = np.array([2 * a / b, -a * a / b ** 2])
    se = np.sqrt(g @ np.cov(np.stack([w, w * w])) @ g / K) + 1e-12
    assert abs(importance_ess(lw) - np.sqrt(2 * s2 - 1) / s2) < 4 * se


def test_ess_stable_and_shift_invariant():
    lw = np.array([-800., -801., -799.5])
    assert np.isfinite(importance_ess(lw))
    assert importance_ess(lw) == pytest.approx(importance_ess(lw + 1600.))
    assert importance_ess(np.zeros(10)) == pytest.approx(1.)
    assert importance_ess(np.array([0., -1e4, -1e4])) == pytest.approx(1 / 3)


def test_importance_diagnostics_fields():
    lp, lq = np.array([0., 0., np.log(2.)]), np.zeros(3)
    d = importance_diagnostics(lp, lq)
    assert d.ess_frac == pytest.approx(16 / (3 * 6))
    assert d.ess == pytest.approx(16 / 6) and d.max_weight == pytest.approx(.5)
    assert d.log_evidence == pytest.approx(np.log(4 / 3))


@pytest.mark.parametrize('call, arg', [
    (lambda: elbo_estimate(np.zeros(5)), '`log_q`'),
    (lambda: elbo_estimate(np.zeros(5), log_q=np.zeros(5), entropy=1.), '`log_q`'),
    (lambda: elbo_estimate(lambda z: z[:, 0], log_q=np.zeros(3)), '`z`'),
    (lambda: elbo_estimate(np.zeros(1), entropy=0.), 'at least 2'),
    (lambda: elbo_estimate(np.array([0., np.nan]), entropy=0.), '`log_joint`'),
    (lambda: elbo_converged(np.ones(10), np.ones(9)), '`stderrs`'),
    (lambda: elbo_converged(np.ones(10), window=1), '`window`'),
    (lambda: elbo_converged(np.ones(10), k=0.), '`k`'),
    (lambda: param_change(np.zeros(2), np.eye(2), np.zeros(3), np.eye(2)), '`m_new`'),
    (lambda: run_spread(np.zeros((1, 2))), '`means`'),
    (lambda: run_spread(np.zeros((3, 2)), np.ones((3, 3))), '`covs`'),
    (lambda: importance_ess(np.array([0., np.inf])), '`log_w`'),
    (lambda: importance_diagnostics(np.zeros(3), np.zeros(2)), '`log_q`'),
    (lambda: gauss_kl(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2)), '`cov1`'),
])
def test_bad_input_names_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
