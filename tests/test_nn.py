"MLP room: VJP w.r.t. parameters and inputs, per-example gradients, GGN diagonals, K-FAC factors, errors."
import numpy as np
import pytest
from ngvi_lit.nn import (MLP, GaussianLik, BernoulliLik, CategoricalLik, check_data, loss_and_grad, ggn_diag,
                         fisher_diag_mc, ggn, kfac_factors)

def _fd(fun, x, h=1e-6):
    g = np.zeros_like(x); xf, gf = x.reshape(-1), g.reshape(-1)
    for i in range(xf.size):
        xp = xf.copy(); xp[i] += h; xm = xf.copy(); xm[i] -= h
        gf[i] = (fun(xp.reshape(x.shape)) - fun(xm.reshape(x.shape))) / (2 * h)
    return g

@pytest.mark.parametrize('act', ['tanh', 'relu'])
def test_vjp_params_and_inputs(act):
    rng = np.random.default_rng(0)
    net = MLP((3, 4, 2, 2), act)
    w, X, C = net.init(rng) + 0.1 * rng.standard_normal(net.n_params), rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    bw = net.backward(w, net.forward(w, X), C)
    assert np.allclose(bw.grad, _fd(lambda v: np.sum(C * net(v, X)), w), rtol=1e-6, atol=1e-8)
    assert np.allclose(bw.dX, _fd(lambda v: np.sum(C * net(w, v)), X), rtol=1e-6, atol=1e-8)
    assert [d.shape for d in bw.deltas] == [(4, 4), (4, 2), (4, 2)]
    assert np.array_equal(net.pack(net.unpack(w)), w)

@pytest.mark.parametrize('lik,k', [(GaussianLik(0.5), 1), (BernoulliLik(), 1), (CategoricalLik(), 3)])
def test_ggn_and_kfac_exact(lik, k):
    rng = np.random.default_rng(1)
    net = MLP((2, 3, k))
    w, X = net.init(rng, 1.5), rng.standard_normal((4, 2))
    F = net(w, X); y = lik.sample(F, rng)
    X, y = check_data(net, lik, X, y[:, 0] if k == 1 else y)
    f, g, fw, bw = loss_and_grad(net, lik, w, X, y)
    assert np.allclose(g, _fd(lambda v: lik.nll(net(v, X), y).sum(), w), rtol=1e-6, atol=1e-8)
    assert np.allclose(net.per_example_grads(fw, bw.deltas).sum(0), g, atol=1e-12)
    assert np.allclose(net.sum_sq_grads(fw, bw.deltas), (net.per_example_grads(fw, bw.deltas) ** 2).sum(0), atol=1e-12)
    G = ggn(net, lik, w, X)
    assert np.allclose(ggn_diag(net, lik, w, X), np.diag(G), atol=1e-12)
    Gn = ggn(net, lik, w, X[:1])
    for l, (A, Gl) in enumerate(kfac_factors(net, lik, w, X[:1])):
        s = net.layer_slice(l); assert np.allclose(Gn[s, s], np.kron(A, Gl), atol=1e-12)
    # sampled-label factors and diagonal are unbiased: average of 400 draws within 5 s.e.
    D = np.array([fisher_diag_mc(net, lik, w, X, rng) for _ in range(400)])
    se = D.std(0) / np.sqrt(len(D)); m = np.diag(G) > 1e-10
    assert np.all(np.abs(D.mean(0) - np.diag(G))[m] < 5 * se[m] + 1e-12)

def test_errors_name_argument():
    net = MLP((2, 3, 3))
    for f, word in [(lambda: MLP((2,)), 'sizes'), (lambda: MLP((2, 0, 1)), 'sizes[1]'), (lambda: MLP((2, 3), 'x'), 'activation'),
                    (lambda: net.forward(np.zeros(3), np.zeros((1, 2))), '`w`'), (lambda: net.forward(np.zeros(net.n_params), np.zeros((1, 5))), '`X`'),
                    (lambda: check_data(net, CategoricalLik(), [[np.nan, 0]], [0]), '`X`'),
                    (lambda: check_data(net, CategoricalLik(), [[0, 0]], [3]), '`y`'),
                    (lambda: check_data(net, BernoulliLik(), [[0, 0]], [1]), '`net`'),
                    (lambda: check_data(MLP((2, 1)), BernoulliLik(), [[0, 0]], [0.5]), '`y`')]:
        with pytest.raises(ValueError, match=word.replace('[', r'\[').replace(']', r'\]')): f()
