"""Property tests for ngvi_lit.minibatch: data sources, unbiased scaling, the loop, the bias formula, remedies."""
import numpy as np
import pytest
from ngvi_lit.families import MvNormal
from ngvi_lit.models import LinearRegression
from ngvi_lit.minibatch import (ArraySource, MemmapSource, ChunkSource, glm_batch_grad_hess, glm_example_terms, glm_elbo,
                                minibatch_ngvi, predicted_stationary_bias, robbins_monro, growing_batch, warmup, constant,
                                limit_blas_threads)

limit_blas_threads(1)


def _problem(seed=1, N=400, D=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)) * np.linspace(.5, 2, D); X[:, 0] = 1.
    y_lin = X @ rng.standard_normal(D) + rng.standard_normal(N)
    y_log = (rng.random(N) < 1 / (1 + np.exp(-X @ rng.standard_normal(D) * .5))).astype(float)
    prior = MvNormal(np.zeros(D), 10 * np.eye(D))
    return X, y_lin, y_log, prior


def _sources(tmp_path, X, y):
    np.save(tmp_path / 'X.npy', X); np.save(tmp_path / 'y.npy', y)
    chunks = lambda: ((X[a:a + 37], y[a:a + 37]) for a in range(0, len(y), 37))
    return [ArraySource(X, y), MemmapSource(tmp_path / 'X.npy', tmp_path / 'y.npy', chunk_rows=64), ChunkSource(chunks, len(y), X.shape[1])]


@pytest.mark.parametrize('B', [1, 7, 32, 400, 1000])
def test_epoch_visits_every_row_once(tmp_path, B):
    X = np.random.default_rng(0).standard_normal((203, 3)); y = np.arange(203.)
    for s in _sources(tmp_path, X, y):
        got = list(s.batches(B, np.random.default_rng(2)))
        yc = np.concatenate([b[1] for b in got]); Xc = np.concatenate([b[0] for b in got])
        assert sorted(yc) == list(y) and np.array_equal(Xc, X[yc.astype(int)])
        assert all(len(b[1]) == min(B, 203) for b in got[:-1])


def test_shuffle_uses_rng(tmp_path):
    X = np.arange(100.)[:, None]; y = np.arange(100.)
    s = ArraySource(X, y)
    a = np.concatenate([b[1] for b in s.batches(10, np.random.default_rng(3))])
    b = np.concatenate([b[1] for b in s.batches(10, np.random.default_rng(3))])
    c = np.concatenate([b[1] for b in s.batches(10)])
    assert np.array_equal(a, b) and np.array_equal(c, y) and not np.array_equal(a, y)


@pytest.mark.parametrize('lik', ['gaussian', 'logistic'])
@pytest.mark.parametrize('B', [10, 40, 100])
def test_permutation_average_equals_full_batch(lik, B):
    X, y_lin, y_log, prior = _problem()
    y = y_lin if lik == 'gaussian' else y_log
    rng = np.random.default_rng(B)
    q = MvNormal(rng.standard_normal(4), np.diag(rng.uniform(.01, .2, 4)))
    gF, HF = glm_batch_grad_hess(q, X, y, len(y), prior, lik)
    parts = [glm_batch_grad_hess(q, Xb, yb, len(y), prior, lik) for Xb, yb in ArraySource(X, y).batches(B, rng)]
    np.testing.assert_allclose(np.mean([p[0] for p in parts], 0), gF, rtol=1e-10, atol=1e-9 * np.abs(gF).max())
    np.testing.assert_allclose(np.mean([p[1] for p in parts], 0), HF, rtol=1e-10, atol=1e-9 * np.abs(HF).max())


def test_example_terms_sum_to_full_batch():
    X, y_lin, y_log, prior = _problem()
    q = MvNormal(np.ones(4) * .1, np.eye(4) * .05)
    G, Hs = glm_example_terms(q, X, y_log, 'logistic')
    g, H = glm_batch_grad_hess(q, X, y_log, len(y_log), prior, 'logistic')
    np.testing.assert_allclose(G.sum(0) + prior.prec @ q.mean, g, rtol=1e-10)
    np.testing.assert_allclose(Hs.sum(0) + prior.prec, H, rtol=1e-10)


def test_glm_helpers_are_the_models_own_code():
    from ngvi_lit.models import GLM
    from ngvi_lit.quadrature import glm_likelihood
    X, _, y_log, prior = _problem()
    q = MvNormal(np.ones(4) * .1, np.eye(4) * .05)
    m = GLM(X, y_log, prior, glm_likelihood('logistic'))
    g, H = glm_batch_grad_hess(q, X[:40], y_log[:40], len(y_log), prior, 'logistic')
    g2, H2 = m.on_batch(X[:40], y_log[:40], len(y_log)).expected_grad_hess(q)
    assert np.array_equal(g, g2) and np.array_equal(H, H2)
    for b in (37, 65536):
        assert abs(glm_elbo(q, ArraySource(X, y_log), prior, 'logistic', batch_size=b) - m.elbo(q)) < 1e-12 * abs(m.elbo(q))
    with pytest.raises(ValueError, match='`batch_size`'): glm_elbo(q, ArraySource(X, y_log), prior, 'logistic', batch_size=0)


def test_full_batch_rho_one_is_exact_and_elbo_matches_kl():
    X, y_lin, _, prior = _problem()
    post = LinearRegression(X, y_lin, 1.0, prior).exact_posterior()
    src = ArraySource(X, y_lin)
    q = minibatch_ngvi(src, prior, 'gaussian', prior, np.random.default_rng(0), 1, batch_size=len(y_lin), rho=1.).q
    assert q.kl(post) < 1e-9
    q2 = MvNormal(post.mean + .05, post.cov * 1.3)   # ELBO(post) - ELBO(q2) = KL(q2 || post) exactly
    d = glm_elbo(post, src, prior) - glm_elbo(q2, src, prior)
    assert abs(d - q2.kl(post)) < 1e-8 * max(1, abs(d))


def test_stationary_elbo_bias_matches_leading_order_term():
    X, y_lin, _, prior = _problem()
    post = LinearRegression(X, y_lin, 1.0, prior).exact_posterior()
    G, Hs = glm_example_terms(post, X, y_lin)
    B, rho, burn, T = 16, .2, 100, 2500
    res = minibatch_ngvi(ArraySource(X, y_lin), prior, 'gaussian', prior, np.random.default_rng(7), burn + T,
                         batch_size=B, rho=rho, sampling='iid', average_from=burn, record=lambda t, q, qa: q.kl(post))
    h = np.array(res.history[burn:]); blocks = h.reshape(25, -1).mean(1)
    se = blocks.std(ddof=1) / 5
    pred = -predicted_stationary_bias(G, Hs, post.cov, B, rho)['elbo']
    assert abs(h.mean() - pred) < 3.5 * se + 0.05 * pred
    assert res.q_avg.kl(post) * 10 < h.mean()   # Polyak-Ruppert in natural parameters: >= 10x smaller bias


def test_predicted_bias_scaling():
    X, y_lin, _, prior = _problem()
    post = LinearRegression(X, y_lin, 1.0, prior).exact_posterior()
    G, Hs = glm_example_terms(post, X, y_lin)
    a = predicted_stationary_bias(G, Hs, post.cov, 10, .1); b = predicted_stationary_bias(G, Hs, post.cov, 20, .1)
    assert np.all(np.linalg.eigvalsh(a['cov']) > -1e-15) and a['elbo'] < 0
    ratio = (2 * (400 - 10) / (400 - 20))
    assert abs(a['elbo'] / b['elbo'] - ratio) < 1e-12
    assert predicted_stationary_bias(G, Hs, post.cov, 400, .1)['elbo'] == 0    # the full batch has no noise


def test_remedies_run_and_do_not_increase_bias_much():
    X, y_lin, _, prior = _problem()
    post = LinearRegression(X, y_lin, 1.0, prior).exact_posterior()
    src = ArraySource(X, y_lin)
    common = dict(batch_size=16, sampling='iid', n_steps=1500)
    def run(**kw):
        res = minibatch_ngvi(src, prior, 'gaussian', prior, np.random.default_rng(1), **(common | kw))
        assert res.n_rejected == 0 and np.all(np.isfinite(res.q.mean))
        return res.q.kl(post), res
    k_rm, _ = run(rho=robbins_monro(.1, 50, .7))
    k_gb, res = run(rho=.1, batch_size=growing_batch(16, 2, 200, b_max=400))
    assert res.rows_seen > 16 * 1500
    k_ic, res = run(rho=.1, independent_curvature=True)
    assert res.rows_seen == 16 * 1500                  # gradient and curvature from the two halves of each batch
    k_be, _ = run(rho=.1, beta=.2)
    k_wu, _ = run(rho=warmup(constant(.1), 100))
    assert all(np.isfinite([k_rm, k_gb, k_ic, k_be, k_wu])) and k_gb < 1e-3


def test_epochs_sampling_with_memmap(tmp_path):
    X, _, y_log, prior = _problem()
    np.save(tmp_path / 'X.npy', X); np.save(tmp_path / 'y.npy', y_log)
    src = MemmapSource(tmp_path / 'X.npy', tmp_path / 'y.npy', chunk_rows=100)
    res = minibatch_ngvi(src, prior, 'logistic', prior, np.random.default_rng(0), 200, batch_size=50, rho=.2, average_from=40)
    full = minibatch_ngvi(ArraySource(X, y_log), prior, 'logistic', prior, np.random.default_rng(0), 100, batch_size=400, rho=.5).q
    assert res.q_avg.kl(full) < 0.1 and res.rows_seen == 200 * 50


@pytest.mark.parametrize('bad', [dict(batch_size=0), dict(batch_size=2.5), dict(rho=0.), dict(rho=1.5), dict(sampling='x'), dict(beta=2.)])
def test_bad_arguments_name_themselves(bad):
    X, y_lin, _, prior = _problem()
    kw = dict(batch_size=8, rho=.1) | bad
    with pytest.raises(ValueError, match=list(bad)[0]):
        minibatch_ngvi(ArraySource(X, y_lin), prior, 'gaussian', prior, np.random.default_rng(0), 3, **kw)


def test_bad_sources():
    with pytest.raises(ValueError, match='y'): ArraySource(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match='path_X'): MemmapSource('/nonexistent.npy', '/nonexistent2.npy')
    with pytest.raises(ValueError, match='kappa'): robbins_monro(.1, 10, .3)
    with pytest.raises(TypeError, match='rng'):
        X, y_lin, _, prior = _problem()
        minibatch_ngvi(ArraySource(X, y_lin), prior, 'gaussian', prior, 0, 3)


# ---------------------------------------------------------------- issue 16: errors that name what is wrong

def test_sources_still_importable_from_minibatch():
    import ngvi_lit.minibatch as mb, ngvi_lit.sources as src
    assert mb.ArraySource is src.ArraySource and mb.MemmapSource is src.MemmapSource and mb.ChunkSource is src.ChunkSource
    assert mb.limit_blas_threads is src.limit_blas_threads


@pytest.mark.parametrize('bad', [0, -1, 2.5, None])
def test_record_every_is_named(bad):
    X, y_lin, _, prior = _problem()
    with pytest.raises(ValueError, match='`record_every`'):           # record_every=0 was a ZeroDivisionError
        minibatch_ngvi(ArraySource(X, y_lin), prior, 'gaussian', prior, np.random.default_rng(0), 3,
                       record=lambda t, q, qa: t, record_every=bad)


@pytest.mark.parametrize('bad', [1.5, 0., -0.1, float('nan'), None])
def test_rho_schedule_out_of_range_names_rho_and_step(bad):
    X, y_lin, _, prior = _problem()
    with pytest.raises(ValueError, match=r'`rho` schedule returned .* at step t=3; step sizes must lie in \(0, 1\]'):
        minibatch_ngvi(ArraySource(X, y_lin), prior, 'gaussian', prior, np.random.default_rng(0), 10,
                       rho=lambda t: bad if t == 3 else .1)


@pytest.mark.parametrize('sampling', ['iid', 'epochs'])
def test_batch_size_schedule_returning_zero_names_batch_size(sampling):
    X, y_lin, _, prior = _problem()
    with pytest.raises(ValueError, match=r'`batch_size` schedule returned 0 at step t='):   # iid was a ZeroDivisionError
        minibatch_ngvi(ArraySource(X, y_lin), prior, 'gaussian', prior, np.random.default_rng(0), 50,
                       batch_size=lambda t: 200 if t < 2 else 0, sampling=sampling)


def _broken_gaussian(bad_y=99.):
    "The Gaussian likelihood with a nan expected gradient wherever y == bad_y."
    from ngvi_lit.quadrature import Lik1D, glm_likelihood
    g = glm_likelihood('gaussian')
    def expect(y, m, s):
        e0, e1, e2 = g.expect(y, m, s)
        return e0, np.where(y == bad_y, np.nan, e1), e2
    return Lik1D('broken', g.loglik, expect)


def test_non_finite_gradient_stops_with_the_batch_rows():
    X, y_lin, _, prior = _problem()
    y = y_lin.copy(); y[5] = 99.
    with pytest.raises(ValueError, match=r'non-finite gradient or curvature at step t=0 on a batch of 400 rows: row\(s\) 5 of the batch .*y = \[99\.0\]'):
        minibatch_ngvi(ArraySource(X, y), prior, _broken_gaussian(), prior, np.random.default_rng(0), 5, batch_size=400, rho=.5)


def test_non_finite_gradient_is_never_a_silent_q0():
    X, y_lin, _, prior = _problem()
    y = y_lin.copy(); y[[7, 8]] = 99.
    with pytest.raises(ValueError, match=r'non-finite gradient .*step t=\d+'):
        minibatch_ngvi(ArraySource(X, y), prior, _broken_gaussian(), prior, np.random.default_rng(0), 200, batch_size=16,
                       sampling='iid', rho=.1)


def test_nan_row_in_data_is_named_before_any_step(tmp_path):
    X, y_lin, _, prior = _problem()
    X = X.copy(); X[123, 2] = np.nan
    with pytest.raises(ValueError, match=r'`X`: row\(s\) 123 \(row 123: column\(s\) 2\)'):
        minibatch_ngvi(ArraySource(X, y_lin), prior, 'gaussian', prior, np.random.default_rng(0), 5)
    np.save(tmp_path / 'X.npy', X); np.save(tmp_path / 'y.npy', y_lin)
    with pytest.raises(ValueError, match=r'`path_X` \(.*X\.npy\): row\(s\) 123'):
        minibatch_ngvi(MemmapSource(tmp_path / 'X.npy', tmp_path / 'y.npy', chunk_rows=50), prior, 'gaussian', prior,
                       np.random.default_rng(0), 100, batch_size=10)
