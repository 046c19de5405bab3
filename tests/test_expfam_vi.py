"Exponential-family q by the Bayesian learning rule (nbs/08a_expfam_vi.ipynb): exactness, optimality, validity, resume, errors."
import os
import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.special import gammaln, digamma
from ngvi_lit.families import Gamma, Beta, Dirichlet, example_families
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
