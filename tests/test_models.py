"Property tests of the model protocol: exact expectations vs Monte Carlo, finite differences, bad input."
import numpy as np
import pytest
from ngvi_lit.families import MvNormal
from ngvi_lit.models import (LinearRegression, LogisticRegression, ProbitRegression, PoissonRegression,
                             StudentTRegression, Model, Expectations)

def _data(rng, N=120, D=3):
    X = np.column_stack([np.ones(N), rng.standard_normal((N, D - 1))])
    z = np.array([.3, .8, -.5])[:D]
    return X, z

def _models(rng):
    X, z = _data(rng)
    p = 1 / (1 + np.exp(-X @ z))
    return {'linear': LinearRegression(X, X @ z + .3 * rng.standard_normal(len(X)), .09, 3.),
            'logistic': LogisticRegression(X, (rng.random(len(X)) < p) * 1., 3.),
            'probit': ProbitRegression(X, (rng.random(len(X)) < p) * 1., 3.),
            'poisson': PoissonRegression(X, rng.poisson(np.exp(X @ z / 2)), 3.),
            'student': StudentTRegression(X, X @ z + .3 * rng.standard_t(3, len(X)), 3., nu=3., scale=.3)}

NAMES = ['linear', 'logistic', 'probit', 'poisson', 'student']

@pytest.mark.parametrize('name', NAMES)
def test_exact_matches_monte_carlo(name):
    rng = np.random.default_rng(11)
    mod = _models(rng)[name]
    q = MvNormal(np.array([.2, .6, -.4]), .04 * np.eye(3))
    ex = mod.expectations(q)
    K = 20000
    mc = mod.expectations(q, eps=rng.standard_normal((K, 3)))
    assert abs(mc.elbo - ex.elbo) < 5 * mc.elbo_se + 1e-9
    z = q.sample(rng, 4000)
    se = mod.grad_log_lik(z).std(0) / np.sqrt(K)
    assert np.all(np.abs(mc.grad - ex.grad) < 5 * se + 1e-9)

@pytest.mark.parametrize('name', NAMES)
def test_exact_elbo_gradient_by_finite_differences(name):
    mod = _models(np.random.default_rng(12))[name]
    q = MvNormal(np.array([.2, .6, -.4]), .04 * np.eye(3))
    g = mod.expectations(q).grad
    h = 1e-5
    fd = [(mod.elbo(MvNormal.from_precision(q.mean + h * e, q.prec)) - mod.elbo(MvNormal.from_precision(q.mean - h * e, q.prec))) / (2 * h)
          for e in np.eye(3)]
    np.testing.assert_allclose(fd, -g, atol=1e-5 * (1 + np.abs(g).max()))

@pytest.mark.parametrize('name', NAMES)
def test_exact_hessian_is_derivative_of_expected_gradient(name):
    "Price: d E[grad] / dm = E[Hessian], checked by finite differences of the exact expected gradient."
    mod = _models(np.random.default_rng(13))[name]
    q = MvNormal(np.array([.2, .6, -.4]), .04 * np.eye(3))
    H = mod.expectations(q).hess
    h = 1e-5
    fd = np.array([(mod.expectations(MvNormal.from_precision(q.mean + h * e, q.prec)).grad -
                    mod.expectations(MvNormal.from_precision(q.mean - h * e, q.prec)).grad) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(fd, H, rtol=1e-4, atol=1e-4)

def test_ggn_is_psd_and_equals_hessian_for_canonical_link():
    ms = _models(np.random.default_rng(14))
    q = MvNormal(np.array([.2, .6, -.4]), .04 * np.eye(3))
    for name in ('logistic', 'poisson', 'linear'):
        np.testing.assert_allclose(ms[name].expectations(q, curvature='ggn').hess, ms[name].expectations(q).hess, rtol=1e-8)
    for name in ('probit', 'student'):
        Hg = ms[name].expectations(q, curvature='ggn').hess
        assert np.linalg.eigvalsh(Hg - ms[name].prior.prec).min() >= -1e-10

def test_stein_curvature_unbiased():
    rng = np.random.default_rng(15)
    mod = _models(rng)['logistic']
    q = MvNormal(np.array([.2, .6, -.4]), .04 * np.eye(3))
    H = mod.expectations(q).hess
    est = np.array([mod.expectations(q, eps=rng.standard_normal((200, 3)), curvature='stein').hess for _ in range(200)])
    se = est.std(0) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(0) - H) < 5 * se + 1e-9)

def test_conjugate_elbo_equals_evidence():
    mod = _models(np.random.default_rng(16))['linear']
    assert abs(mod.elbo(mod.exact_posterior()) - mod.log_evidence()) < 1e-9

def test_user_model_in_a_few_lines():
    "The protocol: a model written from scratch gets Monte Carlo expectations for free."
    class Quadratic(Model):
        def __init__(self, A, b): self.A, self.b, self.prior = A, b, MvNormal(np.zeros(2), np.eye(2))
        def log_lik(self, z): return -.5 * np.einsum('kd,de,ke->k', z - self.b, self.A, z - self.b)
        def grad_log_lik(self, z): return -(z - self.b) @ self.A
        def hess_log_lik(self, z): return np.broadcast_to(-self.A, (len(z), 2, 2))
    A = np.array([[2., .5], [.5, 1.]]); mod = Quadratic(A, np.array([1., -1.]))
    q = MvNormal(np.zeros(2), np.eye(2))
    ex = mod.expectations(q, eps=np.random.default_rng(0).standard_normal((64, 2)))
    np.testing.assert_allclose(ex.hess, A + np.eye(2))
    with pytest.raises(NotImplementedError): mod.expected_grad_hess(q)

@pytest.mark.parametrize('bad,arg', [
    (dict(X=np.full((5, 2), np.nan)), 'X'), (dict(X=np.ones(5)), 'X'), (dict(y=np.ones(4)), 'y'),
    (dict(y=np.array([0, 1, 2, 0, 1.])), 'y'), (dict(prior=(np.zeros(2), np.array([[1., 2.], [2., 1.]]))), 'prior'),
    (dict(prior=-1.), 'prior'), (dict(prior=MvNormal(np.zeros(3), np.eye(3))), 'prior')])
def test_bad_input_names_the_argument(bad, arg):
    kw = dict(X=np.random.default_rng(0).standard_normal((5, 2)), y=np.array([0, 1, 1, 0, 1.]), prior=1.)
    kw.update(bad)
    with pytest.raises(ValueError, match=arg):
        LogisticRegression(**kw)

def test_bad_noise_and_counts():
    X = np.ones((3, 1))
    with pytest.raises(ValueError, match='noise_var'): LinearRegression(X, np.ones(3), 0., 1.)
    with pytest.raises(ValueError, match='y'): PoissonRegression(X, np.array([1., -1, 2]), 1.)
    with pytest.raises(ValueError, match='nu'): StudentTRegression(X, np.ones(3), 1., nu=-1)


def test_monte_carlo_expectations_are_told_how_draws_were_made():
    "Standard errors come from the estimators room: antithetic pairs are one independent term each; no guessing from the draws."
    from ngvi_lit.estimators import normal_draws
    from ngvi_lit.models import LogisticRegression
    rng = np.random.default_rng(0); X = rng.standard_normal((30, 3)); y = (X[:, 0] > 0) * 1.
    m = LogisticRegression(X, y, 2.); q = MvNormal(np.zeros(3), np.eye(3))
    eps = normal_draws(np.random.default_rng(1), 64, 3, 'antithetic')
    a, i = m.expectations(q, eps, draws='antithetic'), m.expectations(q, eps)
    assert a.terms.shape == (32,) and i.terms.shape == (64,) and a.elbo == i.elbo
    assert np.isclose(a.elbo_se, a.terms.std(ddof=1) / np.sqrt(32)) and a.elbo_se < i.elbo_se
    with pytest.raises(ValueError, match='`draws`'): m.expectations(q, eps, draws='qmc')
    with pytest.raises(ValueError, match='even'): m.expectations(q, eps[:5], draws='antithetic')


def test_exact_pass_in_row_blocks_equals_one_block():
    "The exact pass works in blocks of rows; the sums do not depend on where the blocks end."
    import ngvi_lit.models as M
    rng = np.random.default_rng(4)
    X = rng.standard_normal((2 * M._ROW_BLOCK + 17, 3)); y = (rng.random(len(X)) < .5) * 1.
    m = LogisticRegression(X, y, 3.)
    q = MvNormal.from_precision(np.array([.2, -.1, .3]), np.eye(3) * 50.)
    a = m.expectations(q)
    old = M._ROW_BLOCK
    try:
        M._ROW_BLOCK = len(X); b = m.expectations(q)
    finally: M._ROW_BLOCK = old
    assert np.allclose(a.grad, b.grad, rtol=1e-12, atol=1e-9) and np.allclose(a.hess, b.hess, rtol=1e-12, atol=1e-9)
    assert abs(a.elbo - b.elbo) < 1e-9 * abs(b.elbo)


@pytest.mark.parametrize('seed', range(3))
def test_elbo_chol_system_matches_finite_differences(seed):
    "The ELBO's gradient and Hessian in (m, vech L), against the gradient from `expectations` and its central differences."
    rng = np.random.default_rng(seed)
    N, D = 25, 3
    X = rng.standard_normal((N, D)) * .7
    tri = np.tril_indices(D)
    mod = [LogisticRegression(X, (rng.random(N) < .5) * 1., 2.), PoissonRegression(X, rng.poisson(1., N), 2.),
           ProbitRegression(X, (rng.random(N) < .5) * 1., 2.)][seed]
    A = rng.standard_normal((D, D)); q = MvNormal(rng.standard_normal(D) * .3, A @ A.T / D + .3 * np.eye(D))
    def grad(th):
        L = np.zeros((D, D)); L[tri] = th[D:]
        ex = mod.expectations(MvNormal(th[:D], L @ L.T))
        return np.concatenate([-ex.grad, (np.linalg.inv(L).T - ex.hess @ L)[tri]])
    g, H, L = mod.elbo_chol_system(q)
    th = np.concatenate([q.mean, L[tri]])
    assert np.allclose(g, grad(th), rtol=1e-10, atol=1e-12)
    fd = np.column_stack([(grad(th + e) - grad(th - e)) / 2e-5 for e in np.eye(th.size) * 1e-5])
    assert np.abs(H - fd).max() < 1e-5 * np.abs(fd).max()
    assert np.linalg.eigvalsh(H).max() < 0                     # log-concave likelihood: concave in (m, L)
    assert np.all(np.isfinite(mod.elbo_chol_system(mod.prior)[0]))   # a diagonal L (zeros below the diagonal)
