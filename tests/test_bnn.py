"Bayesian networks: VOGN exact precision on a linear-Gaussian model, IVON's iBLR positivity and Stein estimate, noisy K-FAC = dense step and its step KL, BBVI gradient, state round trips, metrics, errors."
import numpy as np
import pytest
from scipy.linalg import block_diag
from ngvi_lit.nn import MLP, GaussianLik, CategoricalLik
from ngvi_lit.bnn import (BNN, VOGN, IVON, NoisyKFACNet, MAPAdam, BBVI, LayerwiseKFAC, PointMass, Ensemble, ece, evaluate,
                          train, gap_data, _kl_diag)
from ngvi_lit.kfac import KFACNormal

def _cls(seed=7, n=120):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2)); y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 0] > 1)
    return BNN(MLP((2, 8, 3)), CategoricalLik(), X, y), X, y

def test_vogn_precision_exact_linear():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 2)); y = X @ [1., -2.] + 0.3 * rng.standard_normal(40)
    m = BNN(MLP((2, 1)), GaussianLik(0.3), X, y, prior_prec=1.)
    a = VOGN(lr=0.5, beta1=0., beta2=0., curvature='ggn')
    st, _ = a.step(m, a.init(m, None, rng), rng)
    Xa = np.column_stack([X, np.ones(40)])
    assert np.allclose(1 / a.q_of(st).var, np.diag(Xa.T @ Xa) / 0.09 + 1, rtol=1e-12)

def test_ivon_iblr_keeps_positive():
    m, X, y = _cls()
    a = IVON(lr=0.1, beta2=0.5, h0=1e-3)              # a large precision step and a tiny h: plain BLR would go negative
    st = a.init(m, None, np.random.default_rng(0)); rng = np.random.default_rng(1)
    for _ in range(30):
        st, _ = a.step(m, st, rng)
        assert np.all(st.h + st.lam / st.N > 0)

def test_kfac_step_is_dense_solve():
    m, X, y = _cls()
    a = NoisyKFACNet(lr=0.3, beta1=0., beta=0.5, inv_every=3)
    rng = np.random.default_rng(5); st = a.init(m, None, rng)
    for _ in range(4): st, _ = a.step(m, st, rng)
    st2, _ = a.step(m, st, np.random.default_rng(9))
    w = st.q.sample(np.random.default_rng(9), 1)[0]
    g = -(m.data_scale * m.nll_grad(w)[1] + m.prior_prec * st.q.mean)
    Lam = block_diag(*[np.kron(l.A, l.G) for l in st.q.layers])
    assert np.allclose(st2.q.mean - st.q.mean, 0.3 * np.linalg.solve(Lam, g), rtol=1e-8, atol=1e-12)

def test_kfac_step_kl_matches_matrix_normal_kl():
    m, X, y = _cls()
    a = NoisyKFACNet(lr=0.3, beta=0.5, inv_every=3)    # momentum on: u = A V G carries between refreshes
    rng = np.random.default_rng(5); st = a.init(m, None, rng)
    for _ in range(8):                                 # warm-up refreshes at t = 0, 1, then t = 3, 6
        new, info = a.step(m, st, rng)
        assert np.isclose(info.kl_step, new.q.kl(st.q), rtol=1e-8, atol=1e-14), st.t
        st = new

def test_bbvi_grad_fd():
    m, X, y = _cls(n=20)
    b = BBVI(); rng = np.random.default_rng(6); s = b.init(m, None, rng)._replace(rho=np.full(m.n_params, -1.))
    eps = rng.standard_normal((1, m.n_params))
    def obj(mu, rho):
        return m.nll_grad(mu + np.exp(rho) * eps[0])[0].sum() + _kl_diag(mu, np.exp(2 * rho), 0., 1 / m.prior_prec)
    G, _ = b.grad(m, s, eps); h = 1e-6; I = np.eye(m.n_params)
    for i in (0, 5, m.n_params - 1):
        assert abs(G[i] - (obj(s.mu + h * I[i], s.rho) - obj(s.mu - h * I[i], s.rho)) / (2 * h)) < 1e-5
        j = m.n_params + i
        assert abs(G[j] - (obj(s.mu, s.rho + h * I[i]) - obj(s.mu, s.rho - h * I[i])) / (2 * h)) < 1e-5

@pytest.mark.parametrize('algo', [VOGN(lr=0.1), IVON(lr=0.1), NoisyKFACNet(lr=0.1, inv_every=4), MAPAdam(n_members=2), BBVI()])
def test_state_roundtrip_and_train(algo):
    m, X, y = _cls()
    rng = np.random.default_rng(3); st = algo.init(m, None, rng)
    for _ in range(5): st, _ = algo.step(m, st, rng)
    back = algo.state_from_arrays(m, {k: np.asarray(v) for k, v in algo.state_arrays(st).items()})
    r1, r2 = np.random.default_rng(4), np.random.default_rng(4)
    a, _ = algo.step(m, st, r1); b, _ = algo.step(m, back, r2)
    assert np.array_equal(algo.q_of(a).mean, algo.q_of(b).mean)
    r = train(m, algo, rng=np.random.default_rng(0), epochs=2, batch_size=60)
    assert r.nit == 4 and np.all(np.isfinite(r.history['elbo']))
    ev = evaluate(m, r.q, X, y, np.random.default_rng(1), 4)
    assert 0 <= ev['ece'] <= 1 and np.allclose(ev['probs'].sum(1), 1)

def test_ece_hand():
    P = np.array([[.9, .1]] * 4 + [[.6, .4]] * 2); y = np.array([0, 0, 0, 1, 0, 0])
    assert abs(ece(P, y) - (4 / 6 * .15 + 2 / 6 * .4)) < 1e-12

def test_layerwise_kfac_var_and_kl():
    rng = np.random.default_rng(1)
    def spd(n): B = rng.standard_normal((n, n)); return B @ B.T + n * np.eye(n)
    q = LayerwiseKFAC([KFACNormal(rng.standard_normal((3, 2)), spd(3), spd(2)), KFACNormal(rng.standard_normal((2, 2)), spd(2), spd(2))])
    assert np.allclose(q.var, np.concatenate([np.diag(l.to_mvnormal().cov) for l in q.layers]))
    p = LayerwiseKFAC([KFACNormal(np.zeros(l.shape), np.sqrt(2.) * np.eye(l.shape[0]), np.sqrt(2.) * np.eye(l.shape[1])) for l in q.layers])
    assert abs(q.kl_prior(2.) - sum(a.kl(b) for a, b in zip(q.layers, p.layers))) < 1e-10
    assert np.array_equal(Ensemble.from_nat_vec(Ensemble(np.ones((2, 3))).nat_vec).members, np.ones((2, 3)))
    assert PointMass(np.ones(3)).sample(rng, 2).shape == (2, 3)

def test_errors():
    for f, word in [(lambda: BNN(MLP((2, 3, 3)), CategoricalLik(), [[0., np.nan]], [0]), '`X`'),
                    (lambda: BNN(MLP((2, 3, 3)), CategoricalLik(), [[0., 1.]], [3]), '`y`'),
                    (lambda: BNN(MLP((2, 3, 1)), GaussianLik(), [[0., 1.]], [0.], prior_prec=-1), 'prior_prec'),
                    (lambda: BNN(MLP((2, 3, 1)), GaussianLik(), [[0., 1.]], [[0.]]), '`y`'),
                    (lambda: VOGN(curvature='x'), 'curvature'), (lambda: IVON(beta2=1), 'beta2'),
                    (lambda: NoisyKFACNet(inv_every=0), 'inv_every'), (lambda: gap_data(np.random.default_rng(0), n=1), '`n`')]:
        with pytest.raises(ValueError, match=word): f()

def test_kfac_stats_every_keeps_factors_between_updates():
    m, X, y = _cls()
    a = NoisyKFACNet(lr=0.1, beta=0.5, stats_every=3, inv_every=3)
    rng = np.random.default_rng(0); st = a.init(m, None, rng)
    for _ in range(4): st, _ = a.step(m, st, rng)          # t = 4: past the warm-up (t * beta >= 1); no statistics at t = 4, 5
    st5, _ = a.step(m, st, rng)
    assert all(A is B for A, B in zip(st5.A_bar, st.A_bar)) and all(np.isfinite(st5.q.mean))
    with pytest.raises(ValueError, match='stats_every'): NoisyKFACNet(stats_every=0)
