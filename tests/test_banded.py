"""Banded Gaussians and banded NGVI (chapter 08b): the family against the dense MvNormal, the step against the dense
NGVI step, the conjugate one-step check, fit / save / resume, and argument errors."""
import numpy as np
import pytest

from ngvi_lit.banded import (BandedNormal, BandedNGVI, PoissonAR1, StochVolAR1, GaussianAR1, ar1_prior, banded_ngvi_step,
                             _band_of, _dense_of, _selected_inverse)
from ngvi_lit.models import Model, Expectations
from ngvi_lit.updates import ngvi_gaussian_step
from ngvi_lit.fit import fit
import scipy.linalg as sla


def random_banded(T, b, rng):
    A = rng.standard_normal((T, T)); S = A @ A.T + T * np.eye(T)
    return np.where(np.abs(np.subtract.outer(np.arange(T), np.arange(T))) <= b, S, 0.)


class DenseChain(Model):
    "A chain model as a dense models.Model (full-covariance q)."
    def __init__(self, chain): self.chain, self.prior = chain, chain.prior.to_mvnormal()
    def _exact(self, q, curvature, gp, Hp):
        ell, d1, d2 = self.chain.site_terms(q.mean, np.diag(q.cov))
        return Expectations(gp + d1, Hp + np.diag(d2), float(ell.sum() - q.kl(self.prior)), 0.)


def chain(T, seed=0):
    rng = np.random.default_rng(seed); z = np.zeros(T)
    for t in range(1, T): z[t] = .9 * z[t - 1] + .5 * rng.standard_normal()
    return z, rng


@pytest.mark.parametrize('T,b', [(7, 0), (7, 1), (7, 2), (7, 3), (11, 2)])
def test_selected_inverse_matches_dense(T, b):
    S = random_banded(T, b, np.random.default_rng(T + b)); C = np.linalg.inv(S)
    Lb = sla.cholesky_banded(_band_of(S, b), lower=True)
    for B in range(b, min(b + 3, T)):
        assert np.abs(_selected_inverse(Lb, B) - _band_of(C, B)).max() < 1e-12


@pytest.mark.parametrize('b', [1, 2])
def test_family_matches_mvnormal(b):
    rng = np.random.default_rng(b)
    q = BandedNormal.from_precision(rng.standard_normal(7), _band_of(random_banded(7, b, rng), b))
    q2 = BandedNormal.from_precision(rng.standard_normal(7), _band_of(random_banded(7, b, rng), b))
    q1 = BandedNormal.from_precision(rng.standard_normal(7), _band_of(random_banded(7, 1, rng), 1))
    d, d2, d1 = q.to_mvnormal(), q2.to_mvnormal(), q1.to_mvnormal(); z = rng.standard_normal((4, 7))
    assert abs(q.logdet_prec() - d.logdet_prec()) < 1e-12 and abs(q.entropy() - d.entropy()) < 1e-12
    assert np.allclose(q.log_prob(z), d.log_prob(z), rtol=0, atol=1e-12)
    assert np.allclose(q.marginal_var(), np.diag(d.cov), rtol=0, atol=1e-12)
    assert np.allclose(q.sample(np.random.default_rng(1), 5), d.sample(np.random.default_rng(1), 5), rtol=0, atol=1e-12)
    for a, c, da, dc in ((q, q2, d, d2), (q2, q, d2, d), (q, q1, d, d1), (q1, q, d1, d)):
        assert abs(a.kl(c) - da.kl(dc)) < 1e-11
    assert np.allclose(q.natural[0], d.natural[0], atol=1e-12) and np.allclose(_dense_of(q.natural[1]), d.natural[1], atol=1e-12)
    qn = BandedNormal.from_nat_vec(q.nat_vec)
    assert np.allclose(qn.mean, q.mean, atol=1e-12) and np.allclose(qn.prec_banded, q.prec_banded, atol=1e-12)


def test_sample_variance_monte_carlo():
    q = ar1_prior(20, phi=.7, sigma=.5); n = 4000
    v = q.marginal_var(); zs = q.sample(np.random.default_rng(0), n)
    assert np.max(np.abs(zs.var(0, ddof=1) - v) / (v * np.sqrt(2 / (n - 1)))) < 4.5


def test_ar1_prior_covariance():
    lag = np.abs(np.subtract.outer(np.arange(9), np.arange(9)))
    assert np.allclose(ar1_prior(9, .5, .8, .3).to_mvnormal().cov, .3**2 * .8**lag / (1 - .8**2), rtol=0, atol=1e-12)


@pytest.mark.parametrize('kind', ['poisson', 'sv', 'gauss'])
def test_step_matches_dense(kind):
    z, rng = chain(30, 3)
    mod = dict(poisson=lambda: PoissonAR1(rng.poisson(np.exp(1 + z)), mu=1., phi=.9, sigma=.4),
               sv=lambda: StochVolAR1(np.exp(z / 2) * rng.standard_normal(30), phi=.9, sigma=.4),
               gauss=lambda: GaussianAR1(z + .5 * rng.standard_normal(30), noise_sd=.5, phi=.9, sigma=.4))[kind]()
    q = BandedNormal.from_precision(.3 * rng.standard_normal(30) + 1, ar1_prior(30, phi=.5, sigma=.5).prec_banded)
    e, ed = mod.expectations(q), DenseChain(mod).expectations(q.to_mvnormal())
    assert abs(e.elbo - ed.elbo) < 1e-10 and np.abs(e.grad - ed.grad).max() < 1e-12
    for rho in (1., .3):
        qb, qd = banded_ngvi_step(q, e, mod.prior_prec_banded, rho), ngvi_gaussian_step(q.to_mvnormal(), ed.grad, ed.hess, rho)
        assert np.abs(qb.mean - qd.mean).max() < 1e-12 and np.abs(_dense_of(qb.prec_banded) - qd.prec).max() < 1e-12


def test_conjugate_one_step_exact():
    z, rng = chain(40, 1); g = GaussianAR1(z + .5 * rng.standard_normal(40), noise_sd=.5, phi=.9, sigma=.4)
    q1 = banded_ngvi_step(g.prior, g.expectations(g.prior), g.prior_prec_banded, 1.)
    P = g.prior.to_mvnormal().prec + np.eye(40) / g.s2
    assert np.abs(q1.mean - np.linalg.solve(P, g.prior.to_mvnormal().prec @ g.prior.mean + g.y / g.s2)).max() < 1e-12
    assert np.abs(_dense_of(q1.prec_banded) - P).max() < 1e-12
    r = fit(g, BandedNGVI(rho=1.), rng=np.random.default_rng(0))
    assert r.status == 'converged' and r.nit <= 2


def test_fit_equals_dense_ngvi():
    z, rng = chain(50); mod = PoissonAR1(rng.poisson(np.exp(1 + z)), mu=1., phi=.9, sigma=.5)
    res = fit(mod, BandedNGVI(), rng=np.random.default_rng(0))
    assert res.status == 'converged' and isinstance(res.q, BandedNormal)
    r1 = fit(mod, BandedNGVI(rho=1.), rng=np.random.default_rng(0))
    rd = fit(DenseChain(mod), rng=np.random.default_rng(0), rho=1., rule='plain', momentum=0., q0=mod.prior.to_mvnormal())
    assert r1.nit == rd.nit and np.abs(r1.q.mean - rd.q.mean).max() < 1e-12
    assert np.abs(r1.q.to_mvnormal().cov - rd.q.cov).max() < 1e-12 and abs(res.elbo - rd.elbo) < 1e-9


def test_save_resume_bit_identical(tmp_path):
    z, rng = chain(50); mod = PoissonAR1(rng.poisson(np.exp(1 + z)), mu=1., phi=.9, sigma=.5)
    ck = str(tmp_path / 'b.npz')
    whole = fit(mod, BandedNGVI(), rng=np.random.default_rng(0), max_iter=10, tol=1e-30)
    fit(mod, BandedNGVI(), rng=np.random.default_rng(0), max_iter=4, tol=1e-30, save=ck)
    cont = fit(mod, BandedNGVI(), rng=np.random.default_rng(0), max_iter=10, tol=1e-30, resume=ck)
    assert np.array_equal(whole.q.mean, cont.q.mean) and np.array_equal(whole.q.prec_banded, cont.q.prec_banded)
    assert np.array_equal(whole.history['elbo'], cont.history['elbo'])
    avg = fit(mod, BandedNGVI(), rng=np.random.default_rng(0), average_from=3, max_iter=20, tol=1e-30)
    assert isinstance(avg.q_avg, BandedNormal) and np.isfinite(avg.q_avg.kl(avg.q))


def test_stochastic_volatility_fits():
    z, rng = chain(300, 5); sv = StochVolAR1(np.exp(z / 2) * rng.standard_normal(300), phi=.9, sigma=.5)
    r = fit(sv, BandedNGVI(), rng=np.random.default_rng(0))
    assert r.status == 'converged' and np.corrcoef(z, r.q.mean)[0, 1] > .5


@pytest.mark.parametrize('f,name', [
    (lambda: BandedNormal.from_precision(np.zeros(3), np.array([[1., -2., 1.], [1., 1., 0.]])), '`prec`'),
    (lambda: BandedNormal.from_precision(np.zeros(3), np.ones((2, 4))), '`prec`'),
    (lambda: BandedNormal.from_precision(np.zeros(3), np.ones((5, 3))), '`prec`'),
    (lambda: BandedNormal.from_nat_vec(np.ones(8)), '`v`'),
    (lambda: BandedNGVI(rho=0.), '`rho`'), (lambda: BandedNGVI(rho='fast'), '`rho`'),
    (lambda: BandedNGVI(max_backoff=0), '`max_backoff`'),
    (lambda: ar1_prior(10, phi=1.), '`phi`'), (lambda: ar1_prior(10, sigma=0.), '`sigma`'), (lambda: ar1_prior(1), '`T`'),
    (lambda: PoissonAR1(np.array([1., 2.5])), '`y`'), (lambda: GaussianAR1(np.zeros(4), noise_sd=-1.), '`noise_sd`'),
    (lambda: BandedNGVI().init(PoissonAR1(np.ones(5)), ar1_prior(7)), '`q0`'),
])
def test_errors_name_the_argument(f, name):
    with pytest.raises(ValueError, match=name): f()


def test_nonfinite_is_a_fit_fault():
    mod = PoissonAR1(np.ones(5)); q0 = BandedNormal.from_precision(np.full(5, 800.), ar1_prior(5).prec_banded)
    r = fit(mod, BandedNGVI(), rng=np.random.default_rng(0), q0=q0)
    assert r.status == 'failed' and 'non-finite' in r.message


def test_step_with_banded_curvature_matches_dense():
    "A curvature band (k+1, T) is added band by band; a (1, T) band gives the diagonal step's bits."
    from ngvi_lit.banded import banded_ngvi_step, _dense_of
    from ngvi_lit.updates import ngvi_gaussian_step
    T = 25; rng = np.random.default_rng(5)
    mod = StochVolAR1(rng.standard_normal(T), phi=.9, sigma=.4)
    q = BandedNormal.from_precision(rng.standard_normal(T), ar1_prior(T, phi=.5, sigma=.5).prec_banded)
    e = mod.expectations(q)
    C = np.vstack([1 + rng.random(T), .3 * rng.standard_normal(T)]); C[1, -1] = 0.
    qb = banded_ngvi_step(q, e._replace(curv=C), mod.prior_prec_banded, .5)
    qd = ngvi_gaussian_step(q.to_mvnormal(), e.grad, _dense_of(mod.prior_prec_banded) + _dense_of(C), .5)
    np.testing.assert_allclose(qb.mean, qd.mean, atol=1e-10)
    np.testing.assert_allclose(_dense_of(qb.prec_banded), qd.prec, atol=1e-10)
    q1, q2 = (banded_ngvi_step(q, e._replace(curv=c), mod.prior_prec_banded, .5) for c in (e.curv, e.curv[None]))
    assert np.array_equal(q1.mean, q2.mean) and np.array_equal(q1.prec_banded, q2.prec_banded)
    with pytest.raises(ValueError, match='ex.curv'):
        banded_ngvi_step(q, e._replace(curv=np.ones((2, T - 1))), mod.prior_prec_banded, .5)
