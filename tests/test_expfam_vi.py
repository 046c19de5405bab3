"Exponential-family q by the Bayesian learning rule (nbs/08a_expfam_vi.ipynb): exactness, optimality, validity, resume, errors."
import os
import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.special import gammaln, digamma
from ngvi_lit.conjugate import Gamma, Beta, Dirichlet, example_families
from ngvi_lit.fit import fit
from ngvi_lit.expfam_vi import (BLR, Conjugate, PoissonGamma, DirichletCategorical, BetaBernoulli, StudentTPrecision,
                                ExpFamModel, expfam_elbo, gamma_nodes)


def _tot(x): return float(np.sum(x))

@pytest.fixture(scope='module')
def st():
    y = 0.7 * np.random.default_rng(1).standard_t(4., 50)
    return StudentTPrecision(y, nu=4., prior=Gamma(2., 2.))

@pytest.fixture(scope='module')
def q_star(st):
    r = fit(st, BLR(), rng=np.random.default_rng(0))
    assert r.status == 'converged', r
    return r.q

def _conjugate_models():
    rng = np.random.default_rng(2)
    return [PoissonGamma(rng.poisson(3., 40), Gamma(2., 1.)),
            PoissonGamma(rng.poisson([1., 5.], (30, 2))),
            DirichletCategorical(rng.multinomial(30, [.2, .3, .5]), Dirichlet([1., 2., 1.])),
            DirichletCategorical(rng.multinomial(10, [.5, .5], size=3)),
            BetaBernoulli((rng.random((20, 3)) < [.2, .5, .8]).astype(float))]

@pytest.mark.parametrize('i', range(5))
def test_conjugate_one_fit_iteration_is_exact(i):
    m = _conjugate_models()[i]
    r1 = fit(m, BLR(), rng=np.random.default_rng(0), max_iter=1)
    assert _tot(r1.q.kl(m.posterior())) < 1e-12
    r = fit(m, BLR(), rng=np.random.default_rng(0))
    assert r.status == 'converged' and r.nit == 2 and r.n_rejected == 0
    assert abs(r.elbo - m.log_evidence()) < 1e-9          # at the posterior the ELBO is the evidence

def test_textbook_posteriors_and_evidence():
    rng = np.random.default_rng(0)
    y = rng.poisson(3., 40); m = PoissonGamma(y, Gamma(2., .5)); p = m.posterior()
    assert np.allclose([p.shape, p.rate], [2 + y.sum(), 40.5])
    S = y.sum()
    log_py = gammaln(2 + S) - gammaln(2.) + 2 * np.log(.5) - (2 + S) * np.log(40.5) - gammaln(y + 1).sum()
    assert abs(m.log_evidence() - log_py) < 1e-10 and abs(expfam_elbo(m, p)[0] - log_py) < 1e-10
    q = Gamma(p.shape * 1.2, p.rate)
    assert abs(expfam_elbo(m, q)[0] - (log_py - q.kl(p))) < 1e-10
    x = (rng.random(25) < .3).astype(float); b = BetaBernoulli(x, Beta(2., 3.)).posterior()
    assert np.allclose([b.a, b.b], [2 + x.sum(), 28 - x.sum()])

@pytest.mark.parametrize('name', sorted(example_families(np.random.default_rng(0))))
def test_every_family_is_a_first_class_q(name):
    A, B = example_families(np.random.default_rng(3))[name], example_families(np.random.default_rng(4))[name]
    m = Conjugate(A, B.nat_vec - A.nat_vec)
    r = fit(m, BLR(), rng=np.random.default_rng(0), max_iter=1)
    assert _tot(r.q.kl(B)) < 1e-10
    assert np.isfinite(r.history['grad_norm'][0]) and r.history['kl_step'][0] > 0

def test_constant_rho_contracts_geometrically():
    "Conjugate model, constant rho: lambda_k - lambda* = (1 - rho)^k (lambda_0 - lambda*) exactly."
    m = _conjugate_models()[0]; lam0, lam_star = m.prior.nat_vec, m.posterior().nat_vec
    for rho in (.5, lambda t: .5):
        r = fit(m, BLR(rho=rho), rng=np.random.default_rng(0), max_iter=6, tol=1e-16)
        assert np.allclose(r.q.nat_vec - lam_star, .5**6 * (lam0 - lam_star), rtol=1e-10, atol=1e-12)

@pytest.mark.parametrize('a,b', [(0.05, 1.), (0.5, 0.01), (3., 2.), (30., 5.), (300., 40.)])
def test_gamma_nodes(a, b):
    t, w = gamma_nodes(Gamma(a, b))
    assert abs(w.sum() - 1) < 1e-14 and np.all(t > 0)
    assert abs(w @ np.log(t) - (digamma(a) - np.log(b))) < 1e-10 and abs(w @ t * b / a - 1) < 1e-10
    dens = lambda x: np.exp((a - 1) * np.log(x) - b * x + a * np.log(b) - gammaln(a))
    ref = integrate.quad(lambda x: np.log1p(30 * x) * dens(x), 0, np.inf, limit=500, epsabs=1e-14, epsrel=1e-13)[0]
    assert abs(w @ np.log1p(30 * t) - ref) < 1e-10

def test_student_t_gradient_by_finite_differences(st):
    for q in (Gamma(5., 3.), Gamma(0.8, 0.2), Gamma(40., 10.)):
        g = st.grad_mean(q)[0]
        fd = [(st.expected_loglik(Gamma.from_mean_vec(q.mean_vec + e))[0]
               - st.expected_loglik(Gamma.from_mean_vec(q.mean_vec - e))[0]) / 2e-5 for e in np.eye(2) * 1e-5]
        assert np.allclose(g, fd, rtol=1e-6, atol=1e-6)

def test_monte_carlo_within_standard_errors(st):
    mc = StudentTPrecision(st.y, nu=4., prior=Gamma(2., 2.), expectations='mc', n_samples=4096)
    q = Gamma(5., 3.); g = st.grad_mean(q)[0]; e = st.expected_loglik(q)[0]
    rng = np.random.default_rng(7)
    for _ in range(5):
        gm, se = mc.grad_mean(q, rng); em, ese = mc.expected_loglik(q, rng)
        assert np.all(np.abs(gm - g) < 4 * se) and abs(em - e) < 4 * ese and np.all(se > 0)

def test_non_conjugate_optimum(st, q_star):
    L = lambda mu: expfam_elbo(st, Gamma.from_mean_vec(mu))[0]
    g_fd = np.array([(L(q_star.mean_vec + e) - L(q_star.mean_vec - e)) / 2e-5 for e in np.eye(2) * 1e-5])
    nat_grad = st.prior.nat_vec + st.grad_mean(q_star)[0] - q_star.nat_vec
    assert np.allclose(g_fd, nat_grad, atol=1e-6) and np.sqrt(g_fd @ q_star.fvp(g_fd)) < 1e-4
    bf = optimize.minimize(lambda p: -expfam_elbo(st, Gamma(*np.exp(p)))[0], [0., 0.], method='Nelder-Mead',
                           options=dict(xatol=1e-10, fatol=1e-13, maxiter=4000))
    assert q_star.kl(Gamma(*np.exp(bf.x))) < 1e-9 and abs(-bf.fun - expfam_elbo(st, q_star)[0]) < 1e-9

def test_backoff_keeps_q_valid(st, q_star):
    q_far = Gamma(50., .01)
    assert st.prior.nat_vec[0] + st.grad_mean(q_far)[0][0] < -1     # the rho = 1 target is not a Gamma
    r = fit(st, BLR(), rng=np.random.default_rng(0), q0=q_far)
    assert r.status == 'converged' and r.n_invalid > 0 and r.q.kl(q_star) < 1e-10
    r = fit(st, BLR(rho=1.), rng=np.random.default_rng(0), q0=q_far, max_iter=5)
    assert r.n_invalid > 0 and np.all(r.history['rho'] <= 1)

def test_monte_carlo_run_converges(st, q_star):
    mc = StudentTPrecision(st.y, nu=4., prior=Gamma(2., 2.), expectations='mc')
    r = fit(mc, BLR(), rng=np.random.default_rng(5), max_iter=300, average_from=10)
    assert r.status == 'converged' and r.history['elbo_se'][-1] > 0 and r.q_avg.kl(q_star) < 1e-3

@pytest.mark.parametrize('mc', [False, True])
def test_save_resume_bit_identical(st, tmp_path, mc):
    m = StudentTPrecision(st.y, nu=4., prior=Gamma(2., 2.), expectations='mc' if mc else 'quadrature')
    kw = dict(tol=1e-16) if not mc else {}
    p = os.fspath(tmp_path / 'run.npz')
    fit(m, BLR(), rng=np.random.default_rng(6), max_iter=3, save=p, q0=Gamma(1., 3.), **kw)
    r_res = fit(m, BLR(), rng=np.random.default_rng(99), resume=p, max_iter=6, **kw)
    r_full = fit(m, BLR(), rng=np.random.default_rng(6), max_iter=6, q0=Gamma(1., 3.), **kw)
    assert r_res.nit == r_full.nit == 6
    assert np.array_equal(r_res.q.nat_vec, r_full.q.nat_vec)
    for k in ('elbo', 'elbo_se', 'grad_norm', 'rho', 'n_rejected', 'kl_step', 'n_invalid'):
        assert np.array_equal(r_res.history[k], r_full.history[k]), k

def test_bad_values_stop_the_run_cleanly():
    class Broken(ExpFamModel):
        prior, dim = Gamma(1., 1.), 1
        def expected_loglik(self, q, rng=None): return 0., 0.
        def grad_mean(self, q, rng=None): return np.array([np.nan, 0.]), np.zeros(2)
    r = fit(Broken(), BLR(), rng=np.random.default_rng(0))
    assert r.status == 'failed' and 'non-finite' in r.message and r.q.kl(Gamma(1., 1.)) == 0

y = np.arange(5.)
@pytest.mark.parametrize('arg,make', [
    ('rho', lambda: BLR(rho=2.)), ('rho', lambda: BLR(rho='fast')), ('max_backoff', lambda: BLR(max_backoff=0)),
    ('y', lambda: PoissonGamma([1.5, 2])), ('y', lambda: PoissonGamma([[]])), ('counts', lambda: DirichletCategorical([3])), ('counts', lambda: DirichletCategorical(np.zeros((0, 2)))), ('x', lambda: BetaBernoulli(np.zeros((3, 0)))),
    ('x', lambda: BetaBernoulli([0, 2])), ('nu', lambda: StudentTPrecision(y, nu=-1)), ('nu', lambda: StudentTPrecision(y, nu='a')),
    ('y', lambda: StudentTPrecision([[1.]])), ('expectations', lambda: StudentTPrecision(y, expectations='exact')),
    ('n_samples', lambda: StudentTPrecision(y, n_samples=1)),
    ('prior', lambda: PoissonGamma([1, 2], prior=Beta(1., 1.))), ('prior', lambda: PoissonGamma([[1, 2]], prior=Gamma(1., 1.))),
    ('prior', lambda: DirichletCategorical([1, 2], prior=Dirichlet([1., 1., 1.]))),
    ('stats', lambda: Conjugate(Gamma(1., 1.), [-5., 0.])), ('stats', lambda: Conjugate(Gamma(1., 1.), [1.])),
    ('prior', lambda: Conjugate('Gamma', [1., 1.])),
    ('q0', lambda: BLR().init(PoissonGamma([1, 2]), Beta(1., 1.))),
    ('q0', lambda: BLR().init(PoissonGamma([1, 2]), Gamma([1., 1.], [1., 1.]))),
    ('model', lambda: BLR().init(object())),
    ('rng', lambda: StudentTPrecision(y, expectations='mc').grad_mean(Gamma(1., 1.))),
])
def test_errors_name_the_argument(arg, make):
    with pytest.raises(ValueError, match=f'`{arg}`'): make()


# ----- mean-field products (ProductFamily) and the Normal x Gamma model
from scipy import stats
from ngvi_lit.families import DiagNormal, MvNormal
from ngvi_lit.conjugate import Wishart
from ngvi_lit.expfam_vi import ProductFamily, NormalMeanPrecision

_mix = [('Gamma', 'MvNormal'), ('Dirichlet', 'Wishart'), ('Gamma', 'MvNormal', 'Dirichlet', 'Wishart'), ('DiagNormal', 'Beta', 'Poisson')]

@pytest.mark.parametrize('names', _mix)
def test_product_is_the_sum_of_its_factors(names):
    ex, ex2 = example_families(np.random.default_rng(0)), example_families(np.random.default_rng(1))
    q, p = ProductFamily(*[ex[k] for k in names]), ProductFamily(*[ex2[k] for k in names])
    assert type(q) is type(p) and q.factors == tuple(ex[k] for k in names)
    assert q.nat_vec.shape == (sum(ex[k].nat_vec.size for k in names),) and q.batch_shape == ()
    assert abs(q.kl(p) - sum(_tot(a.kl(b)) for a, b in zip(q.factors, p.factors))) < 1e-12
    assert abs(q.entropy() - sum(_tot(f.entropy()) for f in q.factors)) < 1e-12
    assert abs(q.log_partition() - sum(_tot(f.log_partition()) for f in q.factors)) < 1e-12
    assert np.array_equal(q.from_nat_vec(q.nat_vec).nat_vec, q.nat_vec) and type(q).from_mean_vec(q.mean_vec).kl(q) < 1e-10
    assert bool(type(q).in_domain(q.nat_vec)) and not bool(type(q).in_domain(np.full(q.nat_size, np.nan)))
    x = q.sample(np.random.default_rng(0), 4); x0 = tuple(a[0] for a in x)
    assert all(a.shape[0] == 4 for a in x) and len(x) == len(names)
    assert abs(q.log_prob(x0) - (q.sufficient_stats(x0) @ q.nat_vec - q.log_partition() + q.log_base_measure(x0))) < 1e-9
    assert np.shape(q.log_prob(x)) == (4,) and abs(q.log_prob(x)[0] - q.log_prob(x0)) < 1e-12
    P, h = q.nat_size, 1e-6
    J = np.stack([(q.from_nat_vec(q.nat_vec + e).mean_vec - q.from_nat_vec(q.nat_vec - e).mean_vec) / (2 * h)
                  for e in np.eye(P) * h], -1)
    F = q.fisher(); v = np.random.default_rng(1).standard_normal(P)
    assert np.abs(J - F).max() < 1e-7 * np.abs(F).max() and np.allclose(q.fvp(v), F @ v, rtol=1e-12, atol=1e-12)

def test_product_monte_carlo_moments():
    "The mean parameters are E_q[T(x)]: Monte Carlo within 4 standard errors."
    ex = example_families(np.random.default_rng(0)); q = ProductFamily(ex['Gamma'], ex['Dirichlet'], ex['MvNormal'])
    x = q.sample(np.random.default_rng(3), 4000)
    T = np.stack([q.sufficient_stats(tuple(a[i] for a in x)) for i in range(4000)])
    assert np.all(np.abs(T.mean(0) - q.mean_vec) < 4 * T.std(0) / np.sqrt(len(T)) + 1e-12)

def test_product_conjugate_one_step():
    A = ProductFamily(Gamma([2., 3.], [1., 4.]), Dirichlet([1., 2., 5.]))
    B = ProductFamily(Gamma([6., 1.], [2., 2.]), Dirichlet([4., 2., 3.]))
    m = Conjugate(A, B.nat_vec - A.nat_vec)
    r = fit(m, BLR(), rng=np.random.default_rng(0), max_iter=1)
    assert type(r.q) is type(A) and r.q.kl(B) < 1e-12 and r.q.kl(m.posterior()) < 1e-12

@pytest.fixture(scope='module')
def nmp():
    yn = 2. + 0.5 * np.random.default_rng(1).standard_normal(30)
    return NormalMeanPrecision(yn, ProductFamily(DiagNormal([0.], [10.]), Gamma(2., 1.)))

_q1 = ProductFamily(DiagNormal([1.5], [0.3]), Gamma(3., 2.))

def _textbook(q): qm, qt = q.factors; return np.array([qm.mean[0], qm.var[0], qt.shape, qt.rate])

def _sweep(y, q, prior=(0., 10., 2., 1.), parallel=False):
    "One textbook CAVI sweep for N(mu) x Gamma(tau) in (m, v, a, b): Gauss-Seidel, or Jacobi (parallel=True)."
    (m0, v0, a0, b0), (m, v, a, b) = prior, q
    n, S1, S2 = y.size, y.sum(), (y**2).sum()
    v_new = 1 / (1 / v0 + n * a / b); m_new = v_new * (m0 / v0 + S1 * a / b)
    if not parallel: m, v = m_new, v_new
    return np.array([m_new, v_new, a0 + n / 2, b0 + 0.5 * (S2 - 2 * S1 * m + n * (m**2 + v))])

def test_normal_precision_expectations(nmp):
    mu, tau = _q1.sample(np.random.default_rng(2), 100_000)
    ll = stats.norm.logpdf(nmp.y, mu, 1 / np.sqrt(tau[:, None])).sum(1)
    assert abs(ll.mean() - nmp.expected_loglik(_q1)[0]) < 4 * ll.std() / np.sqrt(ll.size)
    f = lambda mu: nmp.expected_loglik(type(_q1).from_mean_vec(mu))[0]
    fd = np.array([(f(_q1.mean_vec + e) - f(_q1.mean_vec - e)) / 2e-5 for e in np.eye(4) * 1e-5])
    assert np.allclose(fd, nmp.grad_mean(_q1)[0], atol=1e-6)

def test_normal_precision_reaches_the_cavi_fixed_point(nmp):
    r = fit(nmp, BLR(), rng=np.random.default_rng(0), tol=1e-15)
    assert r.status == 'converged' and type(r.q) is type(nmp.prior)
    q = np.array([0., 10., 2., 1.])
    for _ in range(10_000):
        q_new = _sweep(nmp.y, q)
        if np.array_equal(q_new, q): break
        q = q_new
    assert np.abs(_textbook(r.q) / q - 1).max() < 1e-10
    nat_grad = nmp.prior.nat_vec + nmp.grad_mean(r.q)[0] - r.q.nat_vec
    assert np.sqrt(nat_grad @ r.q.fvp(nat_grad)) < 1e-6

def test_rho_one_is_parallel_cavi(nmp):
    qk = _q1
    for _ in range(5):
        r = fit(nmp, BLR(rho=1.), rng=np.random.default_rng(0), q0=qk, max_iter=1)
        assert np.abs(_textbook(r.q) / _sweep(nmp.y, _textbook(qk), parallel=True) - 1).max() < 1e-13
        qk = r.q

def test_product_polyak_average_and_resume(nmp, tmp_path):
    lams = []
    r = fit(nmp, BLR(rho=.5), rng=np.random.default_rng(0), max_iter=60, average_from=20, tol=1e-15,
            callback=lambda res: lams.append(res.q.nat_vec))
    assert type(r.q_avg) is type(nmp.prior) and r.nit > 20
    assert np.allclose(r.q_avg.nat_vec, np.mean(lams[20:], 0), rtol=1e-13, atol=0)
    p = os.fspath(tmp_path / 'run.npz')
    kw = dict(average_from=2, tol=1e-16)
    fit(nmp, BLR(rho=.5), rng=np.random.default_rng(6), max_iter=5, save=p, q0=_q1, **kw)
    r_res = fit(nmp, BLR(rho=.5), rng=np.random.default_rng(99), resume=p, max_iter=10, tol=1e-16)
    r_full = fit(nmp, BLR(rho=.5), rng=np.random.default_rng(6), max_iter=10, q0=_q1, **kw)
    assert r_res.nit == r_full.nit == 10 and type(r_res.q) is type(r_full.q)
    assert np.array_equal(r_res.q.nat_vec, r_full.q.nat_vec) and np.array_equal(r_res.q_avg.nat_vec, r_full.q_avg.nat_vec)
    for k in ('elbo', 'grad_norm', 'rho', 'n_rejected', 'kl_step', 'n_invalid'):
        assert np.array_equal(r_res.history[k], r_full.history[k]), k

@pytest.mark.parametrize('arg,make', [
    ('factors', lambda: ProductFamily(Gamma(1., 1.), 'Gamma')), ('factors', lambda: ProductFamily()),
    ('nat_vec', lambda: _q1.from_nat_vec(np.zeros(3))), ('nat_vec', lambda: ProductFamily.from_nat_vec(np.zeros(4))),
    ('nat_vec', lambda: _q1.from_nat_vec([0., -1., -2., -1.])), ('nat_vec', lambda: _q1.from_nat_vec([0., -1., 0., np.nan])),
    ('nat_vec', lambda: type(_q1).in_domain(np.zeros((2, 4)))),
    ('mean_vec', lambda: type(_q1).from_mean_vec(np.ones(5))), ('other', lambda: _q1.kl(Gamma(1., 1.))),
    ('other', lambda: _q1.kl(ProductFamily(Gamma(1., 1.), DiagNormal([0.], [1.])))),
    ('x', lambda: _q1.log_prob(1.)), ('v', lambda: _q1.fvp(np.ones(3))),
    ('prior', lambda: NormalMeanPrecision([1., 2.], prior=Gamma(1., 1.))),
    ('prior', lambda: NormalMeanPrecision([1., 2.], prior=ProductFamily(DiagNormal([0., 0.], [1., 1.]), Gamma(1., 1.)))),
    ('y', lambda: NormalMeanPrecision([])), ('y', lambda: NormalMeanPrecision([[1.]])),
    ('q0', lambda: BLR().init(NormalMeanPrecision([1., 2.]), ProductFamily(Gamma(1., 1.), DiagNormal([0.], [1.])))),
])
def test_product_errors_name_the_argument(arg, make):
    with pytest.raises(ValueError, match=f'`{arg}`'): make()
