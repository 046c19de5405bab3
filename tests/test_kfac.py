"K-FAC family, softmax layer and noisy K-FAC: dense equivalences, exact factorisation, fit, resume, errors."
import os
import numpy as np
import pytest
from ngvi_lit.kfac import KFACNormal, SoftmaxRegression, NoisyKFAC, damped_factors, _softmax
from ngvi_lit.families import MvNormal
from ngvi_lit.fit import fit

def _spd(rng, n):
    B = rng.standard_normal((n, n)); return B @ B.T + n * np.eye(n)

def _data(n, rng, p=5, k=3):
    X = np.column_stack([rng.standard_normal((n, p - 1)) * [1.5, 1, .7, .5], np.ones(n)])
    W = np.random.default_rng(123).standard_normal((p, k)) * 1.2
    return X, (_softmax(X @ W).cumsum(1) > rng.random((n, 1))).argmax(1)

@pytest.mark.parametrize('p,k', [(3, 2), (2, 3), (1, 4)])
def test_matches_mvnormal(p, k):
    rng = np.random.default_rng(p * 10 + k)
    q, r = (KFACNormal(rng.standard_normal((p, k)), _spd(rng, p), _spd(rng, k)) for _ in range(2))
    mq, mr = q.to_mvnormal(), r.to_mvnormal()
    assert np.allclose(mq.prec, np.kron(q.A, q.G), rtol=0, atol=0)
    W = rng.standard_normal((5, p, k))
    assert np.allclose(q.log_prob(W), mq.log_prob(W.reshape(5, -1)), rtol=0, atol=1e-12)
    assert abs(q.entropy() - mq.entropy()) < 1e-12
    assert abs(q.kl(r) - mq.kl(mr)) < 1e-12 and abs(r.kl(q) - mr.kl(mq)) < 1e-12 and abs(q.kl(q)) < 1e-12
    R = rng.standard_normal((p, k))
    assert np.allclose(q.solve(R).ravel(), np.linalg.solve(mq.prec, R.ravel()), rtol=1e-12, atol=1e-14)
    # reparameterisation: W = M + L_A^{-T} E L_G^{-1} has covariance inv(kron(A, G)) on W.ravel()
    RA = np.linalg.inv(np.linalg.cholesky(q.A)).T; RG = np.linalg.inv(np.linalg.cholesky(q.G))
    assert np.allclose(np.kron(RA, RG.T) @ np.kron(RA, RG.T).T, mq.cov, rtol=1e-10, atol=1e-14)
    E = rng.standard_normal((p, k))
    assert np.allclose(q.from_std(E), q.mean + RA @ E @ RG)
    q2 = KFACNormal.from_nat_vec(q.nat_vec)
    assert np.allclose(np.kron(q2.A, q2.G), mq.prec, rtol=1e-13) and np.array_equal(q2.mean, q.mean)

def test_sample_covariance():
    rng = np.random.default_rng(0)
    q = KFACNormal(rng.standard_normal((3, 2)), _spd(rng, 3), _spd(rng, 2))
    n = 100_000; C = np.cov(q.sample(rng, n).reshape(n, -1).T); Cd = q.to_mvnormal().cov
    se = np.sqrt((np.outer(np.diag(Cd), np.diag(Cd)) + Cd**2) / n)
    assert np.all(np.abs(C - Cd) < 5 * se)

def test_nat_vec_average_is_valid():
    rng = np.random.default_rng(1)
    qs = [KFACNormal(rng.standard_normal((3, 2)), _spd(rng, 3), _spd(rng, 2)) for _ in range(3)]
    v = np.mean([q.nat_vec for q in qs], 0)
    assert KFACNormal.from_nat_vec(v).shape == (3, 2)

def test_grad_and_ggn():
    rng = np.random.default_rng(2)
    X, y = _data(100, rng)
    m = SoftmaxRegression(X, y, prior_var=2.)
    q = KFACNormal(rng.standard_normal(m.shape) * .3, 30 * np.eye(5), 2 * np.eye(3))
    E = rng.standard_normal((4,) + m.shape)
    f = lambda M: m.log_lik_rows(KFACNormal(M, q.A, q.G).from_std(E)).sum(1).mean() - m.prior_prec / 2 * np.sum(M**2)
    h, fd = 1e-5, np.zeros(m.shape)
    for i in np.ndindex(m.shape):
        d = np.zeros(m.shape); d[i] = h; fd[i] = (f(q.mean + d) - f(q.mean - d)) / (2 * h)
    assert np.abs(m.expected_grad(q, q.from_std(E)) - fd).max() < 1e-6
    # the GGN equals minus the Hessian: check the directional second derivative
    W0, v = q.mean, rng.standard_normal(15)
    ll = lambda w: m.log_lik_rows(w.reshape(m.shape)).sum()
    d2 = (ll(W0.ravel() + h * v) - 2 * ll(W0.ravel()) + ll(W0.ravel() - h * v)) / h**2
    assert abs(-d2 - v @ m.ggn(W0) @ v) < 1e-4 * abs(d2)

def test_kfac_exact_when_factorises():
    rng = np.random.default_rng(3)
    X, y = _data(200, rng)
    m = SoftmaxRegression(X, y)
    Wc = np.zeros(m.shape); Wc[-1] = [.5, -.2, .1]
    A, G = m.kfac_factors(Wc)
    assert np.allclose(200 * np.kron(A, G), m.ggn(Wc), rtol=0, atol=1e-12)
    m1 = SoftmaxRegression(np.ones((200, 1)), y)
    W1 = rng.standard_normal((3, 1, 3)); A1, G1 = m1.kfac_factors(W1)
    assert np.allclose(200 * np.kron(A1, G1), m1.ggn(W1), rtol=0, atol=1e-12)

def test_batch_view():
    X, y = _data(120, np.random.default_rng(4))
    m = SoftmaxRegression(X, y); mb = m.on_batch(X[:30], y[:30].astype(float), 120)
    assert mb.is_batch and mb.data_scale == 4. and mb.n_rows == 120 and m.n_rows == 120 and not m.is_batch
    Ws = m.prior.sample(np.random.default_rng(0), 3)
    parts = [m.on_batch(X[i:i + 30], y[i:i + 30], 120) for i in range(0, 120, 30)]
    assert np.allclose(sum(b.grad_log_lik(Ws) for b in parts) / 4, m.grad_log_lik(Ws))

@pytest.fixture(scope='module')
def problem():
    X, y = _data(600, np.random.default_rng(1))
    return SoftmaxRegression(X, y, prior_var=4.)

def test_fit_close_to_laplace(problem):
    m = problem; lam = m.prior_prec
    W = np.zeros(m.shape)
    for _ in range(30):
        g = m.expected_grad(KFACNormal(W, np.eye(5), np.eye(3)), W)
        W = W + np.linalg.solve(m.ggn(W) + lam * np.eye(15), g.ravel()).reshape(m.shape)
    lap = MvNormal.from_precision(W.ravel(), m.ggn(W) + lam * np.eye(15))
    res = fit(m, NoisyKFAC(), rng=np.random.default_rng(0), batch_size=64, max_iter=300)
    assert res.nit == 300 and res.method == 'noisy-kfac' and isinstance(res.q_avg, KFACNormal)
    Xt, yt = _data(1000, np.random.default_rng(2))
    def score(q):
        P = m.predict_proba(q, Xt, np.random.default_rng(5), 1000)
        return (P.argmax(1) == yt).mean(), np.log(P[np.arange(len(yt)), yt]).mean()
    (ak, lk), (al, ll) = score(res.q_avg), score(lap)
    assert abs(ak - al) < 0.015 and abs(lk - ll) < 0.015

def test_full_batch_and_schedule(problem):
    res = fit(problem, NoisyKFAC(rho=lambda t: 1 / (t + 2), inv_every=3), rng=np.random.default_rng(0), max_iter=40)
    assert res.nit >= 1 and np.isfinite(res.elbo) and res.status in ('max_iter', 'converged')

def test_resume_bit_identical(problem, tmp_path):
    path = os.fspath(tmp_path / 'k.npz'); algo = NoisyKFAC(inv_every=2)
    kw = dict(batch_size=64, average_from=20)
    full = fit(problem, algo, rng=np.random.default_rng(0), max_iter=40, **kw)
    fit(problem, algo, rng=np.random.default_rng(0), max_iter=25, save=path, **kw)
    res = fit(problem, algo, rng=np.random.default_rng(7), max_iter=40, resume=path, **kw)
    for a, b in ((res.q.mean, full.q.mean), (res.q.A, full.q.A), (res.q.G, full.q.G), (res.q_avg.mean, full.q_avg.mean),
                 (res.state.A_bar, full.state.A_bar), (res.history['elbo'], full.history['elbo'])):
        assert np.array_equal(a, b)

def test_damped_factors_identity():
    rng = np.random.default_rng(5)
    A, G = _spd(rng, 4) / 4, _spd(rng, 3) / 9
    Aq, Gq = damped_factors(A, G, 50, 2.)
    pi, g = np.sqrt((np.trace(A) / 4) / (np.trace(G) / 3)), 2. / 50
    cross = 50 * np.sqrt(g) * (pi * np.kron(np.eye(4), G) + np.kron(A, np.eye(3)) / pi)
    assert np.allclose(np.kron(Aq, Gq), 50 * np.kron(A, G) + 2. * np.eye(12) + cross, rtol=1e-13)

@pytest.mark.parametrize('f,name', [
    (lambda: KFACNormal(np.zeros((3, 2)), -np.eye(3), np.eye(2)), 'A'),
    (lambda: KFACNormal(np.zeros((3, 2)), np.eye(3), np.ones((2, 2))), 'G'),
    (lambda: KFACNormal(np.zeros((3, 2)), np.eye(2), np.eye(2)), 'A'),
    (lambda: KFACNormal(np.zeros(3), np.eye(3), np.eye(2)), 'mean'),
    (lambda: SoftmaxRegression(np.ones((4, 2)), [0, 1, 2.5, 0]), 'y'),
    (lambda: SoftmaxRegression(np.ones((4, 2)), [0, 1, 2, 0], k=2), 'y'),
    (lambda: SoftmaxRegression(np.ones((4, 2)), [0, 1, 1, 0], prior_var=-1), 'prior_var'),
    (lambda: SoftmaxRegression(np.ones((4, 2)), [0, 1, 1, 0]).on_batch(np.ones((2, 3)), [0, 1], 4), 'Xb'),
    (lambda: NoisyKFAC(rho=0), 'rho'), (lambda: NoisyKFAC(beta=0), 'beta'), (lambda: NoisyKFAC(n_samples=1), 'n_samples'),
    (lambda: NoisyKFAC(damping=float('nan')), 'damping'), (lambda: NoisyKFAC(inv_every=0), 'inv_every'),
    (lambda: KFACNormal.from_nat_vec(np.zeros(5)), 'nat_vec'),
])
def test_errors_name_argument(f, name):
    with pytest.raises(ValueError, match=f'`{name}`'): f()

def test_init_checks_q0(problem):
    with pytest.raises(ValueError, match='q0'): NoisyKFAC().init(problem, KFACNormal(np.zeros((2, 3)), np.eye(2), np.eye(3)))
    with pytest.raises(TypeError, match='q0'): NoisyKFAC().init(problem, MvNormal(np.zeros(15), np.eye(15)))
