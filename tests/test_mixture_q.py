"Mixture-of-Gaussians q: normalisation, sampling moments, K=1 = Gaussian iBLR step, both modes of a bimodal posterior, argument errors, save/resume."
import numpy as np
import pytest
from ngvi_lit.families import MvNormal
from ngvi_lit.updates import iblr_step
from ngvi_lit.fit import fit
from ngvi_lit.mixture_q import GaussMixtureQ, MixtureNGVI, ProductModel, mixture_step, antithetic_eps, joint_kl

def _q():
    return GaussMixtureQ([.3, .7], [[-1., 0.], [1.5, .5]], [np.eye(2) * 2, [[1., .3], [.3, .5]]])

def test_log_prob_normalises():
    t = np.linspace(-12, 12, 481); G = np.stack(np.meshgrid(t, t, indexing='ij'), -1).reshape(-1, 2)
    assert abs(np.exp(_q().log_prob(G)).sum() * (t[1] - t[0])**2 - 1) < 1e-6

@pytest.mark.parametrize('seed', range(3))
def test_sample_moments(seed):
    q = _q(); z = q.sample(np.random.default_rng(seed), 20000)
    C = sum(w * (c.cov + np.outer(c.mean, c.mean)) for w, c in zip(q.weights, q.components))
    assert np.all(np.abs(z.mean(0) - q.mean) < 4 * z.std(0, ddof=1) / np.sqrt(len(z)))
    for i, j in ((0, 0), (0, 1), (1, 1)):
        v = z[:, i] * z[:, j]
        assert abs(v.mean() - C[i, j]) < 4 * v.std(ddof=1) / np.sqrt(len(z))

def test_entropy_k1_closed_form():
    q = GaussMixtureQ([1.], [[0., 1.]], [[[2., .5], [.5, 1.]]])
    h, se = q.entropy(np.random.default_rng(0), 20000)
    assert abs(h - q.components[0].entropy()) < 4 * se

def test_score_hess_finite_differences():
    q = _q(); z = q.sample(np.random.default_rng(1), 5); h = 1e-5
    _, g, H = q.score_hess(z)
    for d, e in enumerate(np.eye(2)):
        np.testing.assert_allclose(g[:, d], (q.log_prob(z + h * e) - q.log_prob(z - h * e)) / (2 * h), atol=1e-6)
        np.testing.assert_allclose(H[:, :, d], (q.score_hess(z + h * e)[1] - q.score_hess(z - h * e)[1]) / (2 * h), atol=1e-5)

@pytest.mark.parametrize('rho', [.05, .3, 1.])
def test_k1_is_gaussian_iblr_step(rho):
    m = ProductModel(2., .5, 1.5)
    q = GaussMixtureQ([1.], [[.3, .2]], [[[1.5, .2], [.2, 1.]]])
    eps = antithetic_eps(np.random.default_rng(2), 1, 64, 2)
    ex = m.expectations(q.components[0], eps[0])
    a, b = mixture_step(q, m, eps, rho).q.components[0], iblr_step(q.components[0], ex.grad, ex.hess, rho)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-10); np.testing.assert_allclose(a.prec, b.prec, atol=1e-10)

def test_bimodal_both_modes():
    m = ProductModel(2., .5, 1.5)
    r = fit(m, MixtureNGVI(K=2, rho=.2, n_samples=128), rng=np.random.default_rng(0), max_iter=150)
    q = r.q
    assert np.all((q.weights >= .3) & (q.weights <= .7))
    s = q.means.sum(1)                                   # one component per branch: z1 + z2 of opposite signs
    assert s.min() < -1 and s.max() > 1
    g = fit(m, rng=np.random.default_rng(0), expectations='mc', max_iter=100, q0=MvNormal(np.array([.3, .3]), np.eye(2)))
    assert r.elbo - g.elbo > .4                          # about log 2 (a missed mirror mode)

def test_steps_stay_spd_and_kl_nonnegative():
    m = ProductModel(2., .5, 1.5); q = _q(); rng = np.random.default_rng(4)
    for _ in range(5):
        qn = mixture_step(q, m, antithetic_eps(rng, 2, 16, 2), 1.).q
        assert all(np.linalg.eigvalsh(c.prec).min() > 0 for c in qn.components) and joint_kl(qn, q) >= 0
        q = qn

def test_save_resume_bit_identical(tmp_path):
    m = ProductModel(); ck = str(tmp_path / 'mix.npz')
    whole = fit(m, MixtureNGVI(), rng=np.random.default_rng(0), max_iter=8, tol=1e-30, window=100)
    fit(m, MixtureNGVI(), rng=np.random.default_rng(0), max_iter=4, tol=1e-30, window=100, save=ck)
    cont = fit(m, MixtureNGVI(), rng=np.random.default_rng(0), max_iter=8, tol=1e-30, window=100, resume=ck)
    assert np.array_equal(whole.q.means, cont.q.means) and np.array_equal(whole.history['elbo'], cont.history['elbo'])

@pytest.mark.parametrize('call, name', [
    (lambda: GaussMixtureQ([.5, .6], [[0.], [1.]], [[[1.]], [[1.]]]), 'weights'),
    (lambda: GaussMixtureQ([.5, .5], [[0.], [1.], [2.]], [[[1.]], [[1.]]]), 'means'),
    (lambda: GaussMixtureQ([.5, .5], [[0.], [1.]], [[[1.]], [[-1.]]]), 'precs'),
    (lambda: GaussMixtureQ([1.], [[0.]], [[[1.]]]).log_prob(np.zeros((2, 3))), 'z'),
    (lambda: MixtureNGVI(K=0), 'K'),
    (lambda: MixtureNGVI(rho=0), 'rho'),
    (lambda: MixtureNGVI(n_samples=3), 'n_samples'),
    (lambda: ProductModel(sigma=-1.), 'sigma'),
    (lambda: mixture_step(GaussMixtureQ([1.], [[0., 0.]], [np.eye(2)]), ProductModel(), np.zeros((2, 4, 2)), .1), 'eps'),
])
def test_bad_inputs_name_argument(call, name):
    with pytest.raises(ValueError, match=f'`{name}`'): call()
