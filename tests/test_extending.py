"""The reader's extensions (chapter 17) pass the property tests of the built-ins: tests/test_families.py and tests/test_models.py."""
import numpy as np
import pytest
import scipy.stats as st
from scipy.integrate import quad

from ngvi_lit.extending import (InverseGaussian, NegBinRegression, GaussianScale, FixedStepBLR, loglik_negbin,
                                expect_negbin, negbin_likelihood)
from ngvi_lit.families import ExpFamily, MvNormal
from ngvi_lit.quadrature import gauss_expect
from ngvi_lit.fit import fit

IG = InverseGaussian


def members(seed):
    "A batch of three inverse Gaussians, from nearly symmetric to very skewed."
    rng = np.random.default_rng(seed)
    return IG(rng.uniform(.3, 3., 3), rng.uniform(.2, 20., 3))


def _jacobian(f, lam, h):
    cols = []
    for k in range(lam.shape[-1]):
        e = np.zeros_like(lam); e[..., k] = h
        cols.append((f(lam + e) - f(lam - e)) / (2 * h))
    return np.stack(cols, -1)


def ref_kl(q, p):
    "Textbook KL(IG(m1, l1) || IG(m2, l2)) from E_q[(x - m)^2 / x] = E x - 2m + m^2 E[1/x]."
    m1, l1, m2, l2 = q.mean, q.shape, p.mean, p.shape
    return .5 * np.log(l1 / l2) - .5 + l2 / (2 * m2**2) * (m1 - 2 * m2 + m2**2 / m1 + m2**2 / l1)


def scipy_ig(q): return st.invgauss(q.mean / q.shape, scale=q.shape)


# ------------------------------------------------------------------ the inverse Gaussian: maps
@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_round_trip_natural_mean_natural(seed):
    q = members(seed)
    np.testing.assert_allclose(IG.from_mean_vec(q.mean_vec).nat_vec, q.nat_vec, rtol=1e-10)
    np.testing.assert_allclose(IG.from_nat_vec(q.nat_vec).mean_vec, q.mean_vec, rtol=1e-12)
    np.testing.assert_allclose(IG.from_natural(*q.natural).nat_vec, q.nat_vec, rtol=1e-12)
    np.testing.assert_allclose(IG.from_mean(*q.mean_params).nat_vec, q.nat_vec, rtol=1e-10)
    np.testing.assert_allclose(IG(q.mean, q.shape).nat_vec, q.nat_vec, rtol=1e-12)
    assert set(q.moments()) >= {'mean', 'shape', 'var'}


def test_grad_log_partition_is_mean():
    q = members(0)
    g = _jacobian(lambda l: np.asarray(IG.from_nat_vec(l).log_partition())[..., None], q.nat_vec, 1e-6)[..., 0, :]
    np.testing.assert_allclose(g, q.grad_log_partition(), rtol=1e-7)


def test_fisher_is_jacobian_of_mean_map_and_spd():
    q = members(1)
    J = _jacobian(lambda l: IG.from_nat_vec(l).mean_vec, q.nat_vec, 1e-6)
    F = q.fisher()
    assert F.shape == (3, 2, 2)
    np.testing.assert_allclose(J, F, rtol=1e-6, atol=1e-6 * np.abs(F).max())
    np.testing.assert_allclose(F, np.swapaxes(F, -1, -2), rtol=1e-14)
    assert np.all(np.linalg.eigvalsh(F) > 0)


def test_hessian_of_log_partition_along_a_direction():
    q = members(2)
    lam, h = q.nat_vec, 1e-4
    v = np.random.default_rng(5).standard_normal(lam.shape)
    A = lambda l: IG.from_nat_vec(l).log_partition()
    d2 = (A(lam + h * v) - 2 * A(lam) + A(lam - h * v)) / h**2
    np.testing.assert_allclose(d2, (v * q.fvp(v)).sum(-1), rtol=1e-5)


def test_fisher_is_covariance_of_T_monte_carlo():
    "Cov[T] and E[T] from draws: every entry within 4 standard errors."
    q = members(3)
    K = 40_000
    T = q.sufficient_stats(q.sample(np.random.default_rng(12), K))
    assert T.shape == (K, 3, 2)
    dT = T - q.mean_vec
    P = dT[..., :, None] * dT[..., None, :]
    assert np.all(np.abs(P.mean(0) - q.fisher()) <= 4 * P.std(0) / np.sqrt(K))
    assert np.all(np.abs(dT.mean(0)) <= 4 * T.std(0) / np.sqrt(K))


# ------------------------------------------------------------------ densities, entropy, KL
def test_log_prob_and_entropy_match_scipy():
    q = members(0)
    x = q.sample(np.random.default_rng(4), 5)
    np.testing.assert_allclose(q.log_prob(x), scipy_ig(q).logpdf(x), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(ExpFamily.log_prob(q, x), scipy_ig(q).logpdf(x), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(q.entropy(), scipy_ig(q).entropy(), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize('mean, shape', [(1., 1e4), (1., 800.), (1., 250.), (1., .01), (1e-3, 5.), (50., .2)])
def test_mean_log_matches_quadrature_across_regimes(mean, shape):
    "E[log x] = log mu - e^{2w} E1(2w), including both sides of the asymptotic switch at 2w = 500."
    q = IG(mean, shape)
    d = scipy_ig(q)
    lo, hi = d.ppf(1e-15), d.isf(1e-15)
    ref = quad(lambda t: np.log(t) * d.pdf(t), lo, hi, points=[q.moments()['mode']], limit=400, epsabs=1e-13)[0]
    assert abs(q.mean_log() - ref) < 1e-9 * (1 + abs(ref))
    assert np.isfinite(q.entropy())


def test_kl_closed_form_positive_and_zero_at_equality():
    q, p = members(0), members(1)
    np.testing.assert_allclose(q.kl(p), ref_kl(q, p), rtol=1e-10)
    np.testing.assert_allclose(ExpFamily.kl(q, p), ref_kl(q, p), rtol=1e-10)
    assert np.all(q.kl(p) > 0) and np.all(q.kl(q) == 0)


def test_entropy_and_kl_monte_carlo():
    q, p = members(0), members(1)
    x = q.sample(np.random.default_rng(11), 20_000)
    lq, lp = q.log_prob(x), p.log_prob(x)
    for vals, exact in [(-lq, q.entropy()), (lq - lp, q.kl(p))]:
        se = vals.std(0) / np.sqrt(len(vals))
        assert np.all(np.abs(vals.mean(0) - exact) <= 4 * se)


# ------------------------------------------------------------------ validity, batches
@pytest.mark.parametrize('bad, pname', [([[0., -1.]], 'eta1'), ([[-1., .5]], 'eta2'), ([[np.nan, -1.]], 'nat_vec')])
def test_invalid_natural_raises_naming_parameter(bad, pname):
    with pytest.raises(ValueError, match=f'`{pname}`'):
        IG.from_nat_vec(bad)
    assert not np.any(IG.in_domain(np.asarray(bad, float)))


@pytest.mark.parametrize('make, pname', [
    (lambda: IG(-1., 1.), 'mean'), (lambda: IG(1., 0.), 'shape'), (lambda: IG(np.nan, 1.), 'mean'),
    (lambda: IG.from_natural(-1., 0.), 'eta2'), (lambda: IG.from_mean(-1., 1.), 'mean_vec'),
    (lambda: IG.from_mean(2., .5), 'mean_vec'),           # E[1/x] = 1/E[x]: violates (strict) Jensen
    (lambda: IG(1., 1.).log_prob(0.), 'x'),
    (lambda: IG.from_nat_vec([-1., -1., -1.]), 'nat_vec'), (lambda: IG.from_mean_vec([1.]), 'mean_vec'),
    (lambda: IG(1., 1.).fvp(np.ones(3)), 'v'),
])
def test_invalid_arguments_raise_naming_them(make, pname):
    with pytest.raises(ValueError, match=f'`{pname}`'):
        make()


def test_batch_equals_members_and_broadcasting():
    q, p = members(0), members(1)
    x = q.sample(np.random.default_rng(7), 4)
    lp, H, kl, F = q.log_prob(x), q.entropy(), q.kl(p), q.fisher()
    for i in range(3):
        qi, pi = IG.from_nat_vec(q.nat_vec[i]), IG.from_nat_vec(p.nat_vec[i])
        np.testing.assert_allclose(qi.log_prob(x[:, i]), lp[:, i], rtol=1e-12)
        np.testing.assert_allclose([qi.entropy(), qi.kl(pi)], [H[i], kl[i]], rtol=1e-12)
        np.testing.assert_allclose(qi.fisher(), F[i], rtol=1e-12)
    b = IG([[1., 2., 3.]], [[1.], [2.]])
    assert b.batch_shape == (2, 3) and b.sample(np.random.default_rng(0), 4).shape == (4, 2, 3)
    with pytest.raises(ValueError):
        q.nat_vec[0, 0] = 1.


# ------------------------------------------------------------------ negative-binomial regression
def test_negbin_derivatives_and_scipy():
    y = np.array([0., 1, 3, 10, 50, 7]); eta = np.array([-3., .2, 1.5, 2.2, 40, -.7]); r, h = 2.5, 1e-5
    f, f1, f2 = loglik_negbin(y, eta, r)
    up, dn = loglik_negbin(y, eta + h, r), loglik_negbin(y, eta - h, r)
    np.testing.assert_allclose((up[0] - dn[0]) / (2 * h), f1, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose((up[1] - dn[1]) / (2 * h), f2, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(f, st.nbinom(r, r / (r + np.exp(eta))).logpmf(y), rtol=1e-12, atol=1e-12)
    assert np.all(f2 < 0)


def test_negbin_fisher_weight_is_expected_negative_curvature():
    "GGN weight r sigma(eta - log r) = E_y[-f''], summed over the NB mass."
    r, eta = 1.7, np.array([-1., 0.5, 2.])
    X = np.ones((1, 1))
    w = NegBinRegression(X, [1.], 1., r=r)._fisher(eta)
    ys = np.arange(4000.)[:, None]
    mu = np.exp(eta)
    Ew = (st.nbinom(r, r / (r + mu)).pmf(ys) * -loglik_negbin(ys, eta, r)[2]).sum(0)
    np.testing.assert_allclose(w, Ew, rtol=1e-10)


def test_negbin_expectations_exact_vs_quadrature_and_monte_carlo():
    rng = np.random.default_rng(0)
    y = np.array([0., 1, 3, 10, 50, 7]); m = np.array([-1., .3, 1, 2, 3, -2]); s = np.array([.1, .5, 1, .3, 2, 0.]); r = 2.5
    E = expect_negbin(y, m, s, r)
    Eq = gauss_expect(lambda e: loglik_negbin(y[:5, None], e, r), m[:5], s[:5], split=np.log(r))
    for a, b in zip(E, Eq): np.testing.assert_allclose(a[:5], b, rtol=1e-9, atol=1e-9)
    for a, b in zip(E, loglik_negbin(y[5], m[5], r)): assert abs(a[5] - b) < 1e-12   # sd = 0: the pointwise values
    draws = loglik_negbin(y[:5], m[:5] + s[:5] * rng.standard_normal((50_000, 5)), r)
    for d, e in zip(draws, E):
        assert np.all(np.abs(d.mean(0) - e[:5]) <= 4 * d.std(0) / np.sqrt(len(d)))
    lik = negbin_likelihood(r)
    assert lik.name == 'negbin' and np.allclose(lik.expect(y, m, s)[0], E[0], rtol=0, atol=0)


def _nb_model(seed=1, N=150, r=2.):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(N), rng.standard_normal((N, 2))])
    mu = np.exp(X @ np.array([.5, .6, -.4]))
    return NegBinRegression(X, rng.negative_binomial(r, r / (r + mu)).astype(float), 3., r=r)


def test_negbin_model_exact_vs_monte_carlo_and_finite_differences():
    mod = _nb_model()
    q = MvNormal(np.array([.4, .5, -.3]), .01 * np.eye(3))
    ex = mod.expectations(q)
    mc = mod.expectations(q, eps=np.random.default_rng(2).standard_normal((20_000, 3)))
    assert abs(mc.elbo - ex.elbo) < 5 * mc.elbo_se
    moved = lambda dm: MvNormal.from_precision(q.mean + dm, q.prec)
    h = 1e-5
    fd_g = [(mod.elbo(moved(h * e)) - mod.elbo(moved(-h * e))) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(fd_g, -ex.grad, atol=1e-5 * (1 + np.abs(ex.grad).max()))
    fd_H = np.array([(mod.expectations(moved(h * e)).grad - mod.expectations(moved(-h * e)).grad) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(fd_H, ex.hess, rtol=1e-4, atol=1e-4)
    Hg = mod.expectations(q, curvature='ggn').hess
    assert np.linalg.eigvalsh(Hg - mod.prior.prec).min() >= -1e-10


@pytest.mark.parametrize('y, r, pname', [([1., 2., 1.5], 2., 'y'), ([1., -1., 0.], 2., 'y'), ([1., 2., 0.], 0., 'r'),
                                         ([1., 2., 0.], np.inf, 'r'), ([1., 2., 0.], 'a', 'r'), ([1., 2.], 2., 'y')])
def test_negbin_bad_input_names_the_argument(y, r, pname):
    with pytest.raises(ValueError, match=f'`{pname}`'):
        NegBinRegression(np.ones((3, 1)), y, 1., r=r)


def test_negbin_fits_and_minibatch_view_checks_counts():
    mod = _nb_model(N=100)
    res = fit(mod, rng=np.random.default_rng(0))
    assert res.status == 'converged'
    with pytest.raises(ValueError, match='`y`'):
        mod.on_batch(mod.X[:2], np.array([1., .5]), 100)


# ------------------------------------------------------------------ the inverse-Gaussian posterior and the algorithm
def _scale_model(conjugate=False):
    rng = np.random.default_rng(7)
    y = rng.normal(0., .5, 20)
    w = rng.normal(0., 2., 20) if conjugate else ()
    return GaussianScale(y, w, prior=IG(1., 2.))


def test_grad_mean_by_finite_differences_and_evidence_by_quadrature():
    mod = _scale_model()
    q = IG(2., 5.)
    mv, h = q.mean_vec, 1e-6
    fd = [(mod.expected_loglik(IG.from_mean_vec(mv + h * e))[0] - mod.expected_loglik(IG.from_mean_vec(mv - h * e))[0]) / (2 * h)
          for e in np.eye(2)]
    np.testing.assert_allclose(fd, mod.grad_mean(q)[0], rtol=1e-7)
    p, a, b = mod.posterior_gig(); peak = np.sqrt(b / a)
    f = lambda t: np.exp(mod.loglik(t) + mod.prior.log_prob(t) - mod.log_evidence())
    assert abs(quad(f, 0, peak)[0] + quad(f, peak, np.inf)[0] - 1) < 1e-8
    t = q.sample(np.random.default_rng(3), 40_000)
    ll = mod.loglik(t)
    assert abs(ll.mean() - mod.expected_loglik(q)[0]) < 4 * ll.std() / np.sqrt(t.size)


def test_conjugate_one_step_is_exact():
    mod = _scale_model(conjugate=True)
    res = fit(mod, FixedStepBLR(1.), rng=np.random.default_rng(0), max_iter=1)
    assert mod.conjugate and np.array_equal(res.q.nat_vec, mod.prior.nat_vec + mod.stats)
    assert abs(res.elbo - mod.log_evidence()) < 1e-10


def test_non_conjugate_fit_is_stationary_and_agrees_with_blr():
    from ngvi_lit.expfam_vi import BLR
    mod = _scale_model()
    res = fit(mod, FixedStepBLR(1.), rng=np.random.default_rng(0), tol=1e-13)
    assert res.status == 'converged' and res.n_invalid >= 1
    np.testing.assert_allclose(mod.prior.nat_vec + mod.grad_mean(res.q)[0], res.q.nat_vec, rtol=1e-6)
    assert 0 < mod.log_evidence() - res.elbo < .05
    other = fit(mod, BLR(), rng=np.random.default_rng(0), tol=1e-13)
    np.testing.assert_allclose(other.q.nat_vec, res.q.nat_vec, rtol=1e-5)


def test_algorithm_saves_and_resumes_bit_for_bit(tmp_path):
    mod, ck = _scale_model(), str(tmp_path / 'run.npz')
    whole = fit(mod, FixedStepBLR(.5), rng=np.random.default_rng(0), max_iter=8, tol=1e-30)
    fit(mod, FixedStepBLR(.5), rng=np.random.default_rng(0), max_iter=4, tol=1e-30, save=ck)
    cont = fit(mod, FixedStepBLR(.5), rng=np.random.default_rng(0), max_iter=8, tol=1e-30, resume=ck)
    assert np.array_equal(whole.q.nat_vec, cont.q.nat_vec) and np.array_equal(whole.history['elbo'], cont.history['elbo'])


@pytest.mark.parametrize('make, pname', [(lambda: FixedStepBLR(0.), 'rho'), (lambda: FixedStepBLR(1.5), 'rho'),
                                         (lambda: GaussianScale([], []), 'y'), (lambda: GaussianScale([1.], prior=MvNormal(np.zeros(1), np.eye(1))), 'prior'),
                                         (lambda: GaussianScale([np.nan]), 'y'), (lambda: GaussianScale([1.], [np.inf]), 'w')])
def test_bad_algorithm_and_model_arguments(make, pname):
    with pytest.raises(ValueError, match=f'`{pname}`'):
        make()


def test_bad_start_names_q0():
    with pytest.raises(ValueError, match='`q0`'):
        fit(_scale_model(), FixedStepBLR(), rng=np.random.default_rng(0), q0=IG([1., 2.], [1., 1.]))
