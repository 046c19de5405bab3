"""Tests of ngvi_lit.stochvol: the hyperparameter profile, forecasts, filter, tests of calibration, peers and the
optional `arch` dependency."""
import ast, inspect, sys
import numpy as np
import pytest
from scipy import integrate, optimize, stats

from ngvi_lit import stochvol as sv
from ngvi_lit.banded import BandedNGVI, StochVolAR1
from ngvi_lit.fit import fit


@pytest.fixture(scope='module')
def short():
    y, h = sv.simulate_sv(200, mu=-.2, phi=.95, sigma=.25, rng=np.random.default_rng(2))
    return y, h


def test_module_imports_without_arch(monkeypatch):
    "No top-level import of arch; the functions that need it say `pip install arch`."
    tree = ast.parse(inspect.getsource(sv))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top for a in n.names] + [n.module or '' for n in top if isinstance(n, ast.ImportFrom)]
    assert not any(nm == 'arch' or nm.startswith('arch.') for nm in names)
    monkeypatch.setitem(sys.modules, 'arch', None)
    for f in (sv.sp500_returns, lambda: sv.garch_backtest(np.ones(50), 20)):
        with pytest.raises(ImportError, match='pip install arch'): f()


def test_expected_log_prior_identity_and_gradient(short):
    y, _ = short
    psi = sv.sv_to_psi([-.1, .9, .3]); mod = StochVolAR1(y, *sv.sv_from_psi(psi))
    q = fit(mod, BandedNGVI(), rng=np.random.default_rng(0)).q
    val, g = sv.sv_expected_log_prior(q, psi)
    ell = mod.site_terms(q.mean, q.marginal_var())[0].sum()
    assert abs(mod.elbo(q) - (ell + val + q.entropy())) < 1e-9 * abs(mod.elbo(q))
    fd = np.array([(sv.sv_expected_log_prior(q, psi + d)[0] - sv.sv_expected_log_prior(q, psi - d)[0]) / 2e-6
                   for d in 1e-6 * np.eye(3)])
    np.testing.assert_allclose(fd, g, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sv.sv_to_psi(sv.sv_from_psi(psi)), psi, atol=1e-12)


def test_envelope_gradient_matches_profile_differences(short):
    y, _ = short
    P = sv._Profile(y, None, 1e-13); psi = sv.sv_to_psi([-.1, .9, .3])
    f0, g0 = P(psi)
    fd = np.array([(P(psi + d)[0] - P(psi - d)[0]) / 2e-4 for d in 1e-4 * np.eye(3)])
    assert np.abs(fd - g0).max() < 1e-4 * np.abs(g0).max()


def test_fit_sv_recovers_truth_within_laplace():
    theta = np.array([0., .97, .15])
    y, h = sv.simulate_sv(2000, *theta, rng=np.random.default_rng(11))
    r = sv.fit_sv(y)
    d = sv.sv_to_psi(theta) - r.psi
    assert d @ np.linalg.solve(r.psi_cov, d) < stats.chi2.ppf(.999, 3)
    assert np.all(np.linalg.eigvalsh(r.psi_cov) > 0) and r.interval(.95).shape == (3, 2)
    ci = r.interval(.5); assert np.all(ci[:, 0] <= r.theta) and np.all(r.theta <= ci[:, 1])
    v = r.q.marginal_var()
    assert .8 < np.mean(np.abs(h - r.q.mean) < 1.645 * np.sqrt(v)) < .97


def test_sv_forecast_density_cdf_ppf():
    fc = sv.SVForecast(np.array([-.3, .5]), np.array([.05, .4])); ys = np.array([.2, -3.])
    ex = [integrate.quad(lambda h: stats.norm.pdf(ys[i], scale=np.exp(h / 2)) * stats.norm.pdf(h, fc.a[i], np.sqrt(fc.P[i])), -20, 20)[0]
          for i in range(2)]
    np.testing.assert_allclose(np.exp(fc.logpdf(ys)), ex, rtol=1e-8)
    for f in (fc, sv.NormalForecast(np.array([1., 2.])), sv.StudentForecast(np.array([1., 2.]), 4.)):
        for a in (.01, .05, .5, .95):
            np.testing.assert_allclose(f.cdf(f.ppf(a)), a, atol=1e-10)
    # a degenerate mixture (P = 0) is the Gaussian N(0, e^a)
    g = sv.SVForecast(np.array([.4]), np.array([0.]))
    np.testing.assert_allclose(g.logpdf(np.array([1.3])), stats.norm.logpdf(1.3, scale=np.exp(.2)), rtol=1e-12)


def test_student_forecast_unit_variance():
    f = sv.StudentForecast(np.array([1.7]), 6.)
    var = integrate.quad(lambda x: x**2 * np.exp(f.logpdf(np.array([x]))[0]), -np.inf, np.inf)[0]
    assert abs(var - 1.7**2) < 1e-7


def test_filter_update_is_the_one_site_optimum():
    a0, P0, y0 = -.4, .2, 1.9
    m1, v1 = sv.sv_filter_update(y0, a0, P0)
    def neg_elbo(p):
        m, lv = p; v = np.exp(lv)
        return -(-m / 2 - y0**2 * np.exp(-m + v / 2) / 2 - .5 * ((m - a0)**2 / P0 + v / P0 - 1 - np.log(v / P0)))
    d = optimize.minimize(neg_elbo, [a0, np.log(P0)], method='Nelder-Mead', options=dict(xatol=1e-10, fatol=1e-14, maxiter=4000)).x
    assert abs(m1 - d[0]) < 1e-6 and abs(v1 - np.exp(d[1])) < 1e-6


def test_ewma_recursion():
    y = np.random.default_rng(0).standard_normal(60)
    f = sv.ewma_backtest(y, 40, lam=.9, n_init=5)
    s2 = np.mean(y[:5]**2)
    for t in range(1, 41): s2 = .9 * s2 + .1 * y[t - 1]**2
    assert abs(f.sd[0]**2 - s2) < 1e-12 and len(f) == 20


def test_kupiec_and_binomial():
    k = sv.kupiec_test(10, 1000, .01)
    assert abs(k['lr']) < 1e-12 and k['accept'] and k['region'][0] < 10 < k['region'][1]
    x, n, a = 18, 1000, .01; p = x / n
    lr = -2 * ((n - x) * np.log(1 - a) + x * np.log(a)) + 2 * ((n - x) * np.log(1 - p) + x * np.log(p))
    assert abs(sv.kupiec_test(x, n, a)['lr'] - lr) < 1e-9
    assert sv.kupiec_test(0, 1000, .01)['lr'] > 0 and np.isfinite(sv.kupiec_test(1000, 1000, .01)['lr'])
    crit = stats.chi2.ppf(.95, 1); lo, hi = k['region']
    assert sv.kupiec_test(lo - 1, n, a)['lr'] > crit and sv.kupiec_test(hi + 1, n, a)['lr'] > crit
    lo, hi = sv.binomial_interval(900, 1000)
    assert lo < .9 < hi and abs(stats.binom.sf(899, 1000, lo) - .025) < 1e-6


def test_dm_test_lag0_is_iid_se():
    d = np.random.default_rng(1).standard_normal(500) + .1
    r = sv.dm_test(d, lag=0)
    assert abs(r['se'] - d.std() / np.sqrt(500)) < 1e-12 and abs(r['z'] - d.mean() / r['se']) < 1e-12


def test_forecast_scores_counts():
    y = np.random.default_rng(3).standard_normal(400)
    s = sv.forecast_scores(sv.NormalForecast(np.ones(400)), y)
    assert s['kupiec'][.05]['violations'] == int(np.sum(y < stats.norm.ppf(.05)))
    assert abs(s['coverage'] - np.mean(np.abs(y) <= stats.norm.ppf(.95))) < 1e-12
    np.testing.assert_allclose(s['pit'], stats.norm.cdf(y))


def test_student_t_chain_model():
    "StochVolTAR1: quadrature expectations against adaptive quadrature, Price consistency, d/dnu by differences."
    y = np.array([.3, -2.5, 1.1, 4.])
    mod = sv.StochVolTAR1(y, 0., .9, .3, nu=5.)
    m, v = np.array([-.5, 0., .4, 1.]), np.array([.05, .3, .8, .2])
    ell, d1, d2 = mod.site_terms(m, v)
    for i in range(4):
        f = lambda h: mod._c - h / 2 - 3 * np.log1p(y[i]**2 * np.exp(-h) / 5)
        ex = integrate.quad(lambda h: f(h) * stats.norm.pdf(h, m[i], np.sqrt(v[i])), -20, 20)[0]
        assert abs(ex - ell[i]) < 1e-7
    h = 1e-6
    np.testing.assert_allclose((mod.site_terms(m + h, v)[1] - mod.site_terms(m - h, v)[1]) / (2 * h), d2, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(-(mod.site_terms(m + h, v)[0] - mod.site_terms(m - h, v)[0]) / (2 * h), d1, rtol=1e-6, atol=1e-9)
    q = fit(mod, BandedNGVI(), rng=np.random.default_rng(0)).q
    dnu = (sv.StochVolTAR1(y, 0., .9, .3, 5. + 1e-5).elbo(q) - sv.StochVolTAR1(y, 0., .9, .3, 5. - 1e-5).elbo(q)) / 2e-5
    assert abs(dnu - mod.dloglik_dnu(q)) < 1e-6


def test_sv_forecast_student_t_density():
    fc = sv.SVForecast(np.array([.1]), np.array([.3]), nu=7.)
    ex = integrate.quad(lambda h: stats.t.pdf(-2.2 * np.exp(-h / 2), 7.) * np.exp(-h / 2) * stats.norm.pdf(h, .1, np.sqrt(.3)), -20, 20)[0]
    assert abs(np.exp(fc.logpdf(np.array([-2.2])))[0] / ex - 1) < 1e-8
    assert abs(fc.cdf(fc.ppf(.01)) - .01).max() < 1e-10


def test_fit_sv_student_t_short():
    y, _ = sv.simulate_sv(400, 0., .95, .2, nu=6., rng=np.random.default_rng(4))
    r = sv.fit_sv(y, errors='t')
    assert r.theta.size == 4 and r.nu > 2 and r.psi_cov.shape == (4, 4) and np.all(np.linalg.eigvalsh(r.psi_cov) > 0)
    g = sv._Profile(y, r.q, 1e-13)(r.psi)[1]
    assert np.abs(g).max() < 1e-3


@pytest.mark.parametrize('call, name', [
    (lambda: sv.simulate_sv(10, phi=1., rng=np.random.default_rng(0)), '`phi`'),
    (lambda: sv.simulate_sv(10, sigma=-1., rng=np.random.default_rng(0)), '`sigma`'),
    (lambda: sv.fit_sv(np.zeros(5)), '`y`'),
    (lambda: sv.fit_sv(np.r_[np.ones(20), np.inf]), '`y`'),
    (lambda: sv.sv_backtest(np.ones(30), 40), '`start`'),
    (lambda: sv.sv_filter_update(1., 0., 0.), '`P`'),
    (lambda: sv.ewma_backtest(np.ones(30), 20, lam=0.), '`lam`'),
    (lambda: sv.kupiec_test(5, 3, .01), '`n_violations`'),
    (lambda: sv.kupiec_test(1, 3, 1.5), '`alpha`'),
    (lambda: sv.dm_test(np.ones(10), lag=10), '`lag`'),
    (lambda: sv.SVForecast(np.zeros(3), np.zeros(2)), '`P`'),
    (lambda: sv.StudentForecast(np.ones(2), 2.), '`nu`'),
    (lambda: sv.sv_to_psi([0., .5]), '`theta`'),
    (lambda: sv.simulate_sv(10, nu=2., rng=np.random.default_rng(0)), '`nu`'),
    (lambda: sv.fit_sv(np.ones(30), errors='cauchy'), '`errors`'),
    (lambda: sv.StochVolTAR1(np.ones(5), nu=1.), '`nu`'),
    (lambda: sv.sv_filter_update(1., 0., 1., nu=2.), '`nu`'),
])
def test_errors_name_the_argument(call, name):
    with pytest.raises(ValueError) as e: call()
    assert str(e.value).startswith(name)


@pytest.mark.slow
def test_garch_forecasts_are_one_step_with_fixed_parameters():
    pytest.importorskip('arch')
    y = sv.simulate_sv(1200, rng=np.random.default_rng(5))[0]
    f, p = sv.garch_backtest(y, 1000, refit_every=100)
    om, al, be = p[0]; s2 = f.sd[0]**2
    for t in range(1000, 1099):
        s2 = om + al * y[t]**2 + be * s2
        assert abs(s2 / f.sd[t - 999]**2 - 1) < 1e-10
    y2 = y.copy(); y2[1050] = 40.
    f2, _ = sv.garch_backtest(y2, 1000, refit_every=100)
    assert f2.sd[50] == f.sd[50] and f2.sd[51] > f.sd[51]
    ft, pt = sv.garch_backtest(y, 1000, refit_every=100, dist='t')
    assert np.all(ft.nu > 2) and np.isfinite(ft.logpdf(y[1000:])).all()


# ---- leverage (StochVolLevAR1)
@pytest.fixture(scope='module')
def lev_case():
    from ngvi_lit.banded import BandedNormal, ar1_prior
    y, h = sv.simulate_sv(20, mu=.1, phi=.9, sigma=.3, rho=-.6, rng=np.random.default_rng(8))
    mod = sv.StochVolLevAR1(y, .1, .9, .3, -.6)
    q = BandedNormal.from_precision(h + .3 * np.random.default_rng(9).standard_normal(20), ar1_prior(20, phi=.6, sigma=.5).prec_banded)
    return mod, q


def test_leverage_gradient_and_band_are_derivatives(lev_case):
    "grad = -dELBO/dm; and E_q[Hessian] = d E_q[grad] / dm, so Q + C is the Jacobian of the gradient in m (fixed S)."
    from ngvi_lit.banded import BandedNormal, _dense_of
    mod, q = lev_case; ex = mod.expectations(q); T = q.T; h = 1e-5
    assert ex.curv.shape == (2, T)
    at = lambda m: mod.expectations(BandedNormal.from_precision(m, q.prec_banded))
    E = h * np.eye(T)
    g_fd = np.array([-(at(q.mean + e).elbo - at(q.mean - e).elbo) / (2 * h) for e in E])
    J = np.array([(at(q.mean + e).grad - at(q.mean - e).grad) / (2 * h) for e in E])
    np.testing.assert_allclose(g_fd, ex.grad, atol=1e-6 * np.abs(ex.grad).max())
    np.testing.assert_allclose(J, _dense_of(mod.prior_prec_banded) + _dense_of(ex.curv), atol=1e-5 * np.abs(J).max())


def test_leverage_rho_zero_is_symmetric_model(lev_case):
    mod, q = lev_case
    e0 = sv.StochVolLevAR1(mod.y, .1, .9, .3, 0.).expectations(q); e1 = StochVolAR1(mod.y, .1, .9, .3).expectations(q)
    assert abs(e0.elbo - e1.elbo) < 1e-9 * abs(e1.elbo)
    np.testing.assert_allclose(e0.grad, e1.grad, atol=1e-10); np.testing.assert_allclose(e0.curv[0], e1.curv, atol=1e-10)
    assert np.all(e0.curv[1] == 0)


def test_leverage_envelope_gradient_and_predict():
    y, _ = sv.simulate_sv(120, mu=-.2, phi=.95, sigma=.25, rho=-.4, rng=np.random.default_rng(2))
    P = sv._Profile(y, None, 1e-13, leverage=True); psi = sv.sv_to_psi([-.1, .9, .3, -.3], leverage=True)
    f0, g0 = P(psi)
    fd = np.array([(P(psi + d)[0] - P(psi - d)[0]) / 2e-4 for d in 1e-4 * np.eye(4)])
    assert np.abs(fd - g0).max() < 1e-4 * np.abs(g0).max()
    np.testing.assert_allclose(sv.sv_from_psi(sv.sv_to_psi([0., .9, .2, -.7], True), True), [0., .9, .2, -.7], atol=1e-12)
    rng = np.random.default_rng(3); hh = .2 + np.sqrt(.3) * rng.standard_normal(50_000)
    hn = .1 + .9 * (hh - .1) - .6 * .3 * (-1.7) * np.exp(-hh / 2) + .3 * .8 * rng.standard_normal(hh.size)
    a, Pv = sv.sv_lev_predict(.2, .3, -1.7, (.1, .9, .3, -.6))
    assert abs(hn.mean() - a) < 5 * hn.std() / np.sqrt(hn.size)
    assert abs(hn.var() - Pv) < 5 * np.std((hn - hn.mean())**2) / np.sqrt(hn.size)


def test_simulate_leverage_and_errors():
    y0, h0 = sv.simulate_sv(50, rng=np.random.default_rng(1)); y1, h1 = sv.simulate_sv(50, rho=0., rng=np.random.default_rng(1))
    assert np.array_equal(y0, y1) and np.array_equal(h0, h1)
    y, h = sv.simulate_sv(20000, mu=0., phi=.5, sigma=.5, rho=-.7, rng=np.random.default_rng(4))
    eps, eta = y[:-1] * np.exp(-h[:-1] / 2), (h[1:] - .5 * h[:-1]) / .5
    assert abs(np.corrcoef(eps, eta)[0, 1] + .7) < 5 * (1 - .49) / np.sqrt(eps.size)
    for f, name in ((lambda: sv.simulate_sv(10, rho=-1., rng=np.random.default_rng(0)), '`rho`'),
                    (lambda: sv.StochVolLevAR1(y[:10], rho=1.5), '`rho`'),
                    (lambda: sv.fit_sv(y[:100], errors='t', leverage=True), '`leverage`'),
                    (lambda: sv.sv_to_psi([0., .9, .2], leverage=True), '`theta`')):
        with pytest.raises(ValueError, match=name): f()
