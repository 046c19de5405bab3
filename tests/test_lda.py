"Tests of ngvi_lit.lda: the local step against a per-document loop, the global step, bad input, save/resume, and (slow) scikit-learn agreement and topic recovery."
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import digamma
from ngvi_lit.fit import fit
from ngvi_lit.lda import (LDA, LDASVI, LDAState, CSRSource, check_counts, completion_split, expected_log_beta, fit_lda,
                          init_topics, load_docstrings, local_step, match_topics, perplexity, synthetic_lda)


def _corpus(seed=0, D=30, V=12):
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(rng.poisson(0.8, (D, V)))
    return X[X.getnnz(1) > 0]


def _textbook(ids, cts, Elogbeta, alpha, max_iter=100, tol=1e-3):
    gamma = np.ones(Elogbeta.shape[0])
    for it in range(1, max_iter + 1):
        Elt = digamma(gamma) - digamma(gamma.sum())
        phi = np.exp(Elt[:, None] + Elogbeta[:, ids]); phi /= phi.sum(0)
        new = alpha + phi @ cts
        done = np.abs(new - gamma).mean() < tol; gamma = new
        if done: break
    Elt = digamma(gamma) - digamma(gamma.sum())
    phi = np.exp(Elt[:, None] + Elogbeta[:, ids]); phi /= phi.sum(0)
    return gamma, phi * cts, it


def test_local_step_matches_per_document_loop():
    X = _corpus(1); rng = np.random.default_rng(2); K = 3
    lam = rng.gamma(2., 1., (K, X.shape[1])); Elb = digamma(lam) - digamma(lam.sum(1, keepdims=True))
    lf = local_step(check_counts(X), np.exp(expected_log_beta(lam)), 0.2)
    ss = np.zeros_like(lam)
    for d in range(X.shape[0]):
        sl = slice(X.indptr[d], X.indptr[d + 1])
        g, s, it = _textbook(X.indices[sl], X.data[sl], Elb, 0.2)
        ss[:, X.indices[sl]] += s
        assert np.allclose(lf.gamma[d], g, rtol=1e-10) and lf.n_iter[d] == it
    assert np.allclose(lf.sstats, ss, rtol=1e-10)


def test_full_batch_step_is_batch_vb_and_batch_step_is_convex_combination():
    X = _corpus(3); model = LDA(X, 3); q0 = init_topics(3, X.shape[1], np.random.default_rng(0))
    r = fit(model, LDASVI(rho=1.), rng=np.random.default_rng(0), q0=q0, max_iter=1)
    lf = local_step(model.X, np.exp(q0.mean_vec), model.prior.alpha)
    assert np.allclose(r.q.alpha, model.prior.eta + lf.sstats)
    Xb, yb = model.source.take([0, 5, 9]); view = model.on_batch(Xb, yb, model.n_total)
    s, info = LDASVI(tau0=4., kappa=.6).step(view, LDAState(q0, 0), None)
    rho = 5. ** -.6; lfb = local_step(Xb, np.exp(q0.mean_vec), model.prior.alpha)
    assert np.isclose(info.rho, rho)
    assert np.allclose(s.q.alpha, (1 - rho) * q0.alpha + rho * (model.prior.eta + model.n_total / 3 * lfb.sstats))



def test_batch_share_step_keeps_the_batch_exact_and_is_batch_vb_on_the_corpus():
    X = _corpus(3); model = LDA(X, 3); q0 = init_topics(3, X.shape[1], np.random.default_rng(0)); eta = model.prior.eta
    Xb, yb = model.source.take([0, 5, 9]); view = model.on_batch(Xb, yb, model.n_total); f = 3 / model.n_total
    s, info = LDASVI(rho=0.2, batch_share=True).step(view, LDAState(q0, 0), None)
    sB = local_step(Xb, np.exp(q0.mean_vec), model.prior.alpha).sstats
    assert np.isclose(info.rho, 1 - 0.8 * (1 - f))
    assert np.allclose(s.q.alpha, eta + sB + (1 - f) * (0.8 * (q0.alpha - eta) + 0.2 * (model.n_total / 3) * sB))
    s, info = LDASVI(batch_share=True).step(model, LDAState(q0, 0), None)
    assert info.rho == 1 and np.allclose(s.q.alpha, eta + local_step(model.X, np.exp(q0.mean_vec), model.prior.alpha).sstats)


def test_grow_doubles_the_batch_every_pass_and_ends_with_batch_vb_steps():
    X = _corpus(4); N = X.shape[0]
    r = fit_lda(X, 3, np.random.default_rng(0), 'online', passes=3, batch_size=8, grow=2)
    sizes = [8] * -(-N // 8) + [16] * -(-N // 16) + [min(32, N)] * -(-N // 32)
    assert r.nit == len(sizes) and r.rows_seen == 3 * N and r.options['batch_share']
    assert r.history['rho'][-1] == 1.0 if N <= 32 else r.history['rho'][-1] < 1
    with pytest.raises(ValueError, match='`grow`'): fit_lda(X, 3, np.random.default_rng(0), grow=0.5)

def test_bad_input_is_named():
    X = _corpus(4)
    with pytest.raises(ValueError, match='negative'): LDA(sp.csr_matrix(np.array([[1., -2.], [1., 1.]])), 2)
    with pytest.raises(ValueError, match='empty documents'): LDA(np.array([[1., 2.], [0., 0.]]), 2)
    with pytest.raises(ValueError, match='non-finite'): check_counts(np.array([[1., np.inf], [1., 1.]]))
    Xo, Xh = completion_split(X, np.random.default_rng(0))
    with pytest.raises(ValueError, match='`X_obs` has 12 words'): perplexity(np.ones((2, 11)), .5, Xo, Xh)
    with pytest.raises(ValueError, match=r'`test\[0\]`'): fit_lda(X, 2, np.random.default_rng(0), test=(Xo[:, :5], Xh[:, :5]))
    with pytest.raises(ValueError, match='`K`'): LDA(X, 1)
    with pytest.raises(ValueError, match='`q0`'): fit(LDA(X, 2), LDASVI(), rng=np.random.default_rng(0), q0=np.ones((3, 12)), max_iter=1)


def test_perplexity_of_uniform_topics_is_V_and_split_keeps_tokens():
    X = _corpus(5); Xo, Xh = completion_split(X, np.random.default_rng(1))
    assert (Xo + Xh - X).nnz == 0
    assert np.isclose(perplexity(np.ones((4, X.shape[1])), .3, Xo, Xh), X.shape[1])


def test_source_epoch_and_save_resume_bit_identical(tmp_path):
    X = _corpus(6); src = CSRSource(X)
    assert sum(b.shape[0] for b, _ in src.batches(7, np.random.default_rng(0))) == X.shape[0]
    model, algo = LDA(X, 2), LDASVI(tau0=2.)
    kw = dict(rng=np.random.default_rng(1), batch_size=8, average_from=100)
    full = fit(model, algo, max_iter=6, **kw)
    kw['rng'] = np.random.default_rng(1)
    fit(model, algo, max_iter=3, save=str(tmp_path / 'ck'), **kw)
    res = fit(model, algo, rng=np.random.default_rng(99), batch_size=8, average_from=100, max_iter=6, resume=str(tmp_path / 'ck.npz'))
    assert np.array_equal(res.q.alpha, full.q.alpha)


def test_shipped_corpus_and_matching():
    c = load_docstrings()
    assert c.X.shape == (6551, 3000) and len(c.vocab) == 3000 and 'BSD-3-Clause' in c.meta['licence']
    P = np.random.default_rng(0).dirichlet(np.ones(6), 4)
    idx, d = match_topics(P, P[[2, 0, 3, 1]])
    assert list(idx) == [1, 3, 0, 2] and np.all(d < 1e-6)


@pytest.mark.slow
def test_online_recovers_generated_topics():
    X, beta, _ = synthetic_lda(np.random.default_rng(0), n_docs=4000, V=300, K=5, doc_len=100)
    r = fit_lda(X, 5, np.random.default_rng(3), passes=5, batch_size=128, q0=init_topics(5, 300, np.random.default_rng(11)))
    assert match_topics(beta, r.q)[1].max() < 0.2


@pytest.mark.slow
def test_agrees_with_sklearn():
    lda_mod = pytest.importorskip('sklearn.decomposition._lda')
    from sklearn.decomposition import LatentDirichletAllocation
    X, _, _ = synthetic_lda(np.random.default_rng(1), n_docs=300, V=60, K=3, doc_len=40)
    lam0 = init_topics(3, 60, np.random.default_rng(2)).alpha; eb = np.exp(expected_log_beta(lam0))
    g, ss = lda_mod._update_doc_distribution(X, eb, 1 / 3, 100, 1e-3, True, None)   # random_state None: gamma starts at 1
    lf = local_step(check_counts(X), eb, 1 / 3)
    assert np.allclose(lf.gamma, g, rtol=1e-5) and np.allclose(lf.sstats, ss * eb, rtol=1e-6)   # slow documents: digamma rounding differs
    sk = LatentDirichletAllocation(n_components=3, doc_topic_prior=1 / 3, topic_word_prior=1 / 3, learning_method='online',
                                   learning_offset=10., learning_decay=.7, batch_size=300, total_samples=300)
    sk._init_latent_vars(60); sk.components_ = lam0.copy(); sk.exp_dirichlet_component_ = eb
    sk.random_state_ = None              # its E-step then starts every gamma at 1, as ours does
    sk.partial_fit(X)                    # one online step on the whole corpus, rho = (tau0 + 1)^-kappa
    model = LDA(X, 3); s, _ = LDASVI(tau0=10., kappa=.7).step(model.on_batch(model.X, np.zeros(300), 300), LDAState(init_topics(3, 60, np.random.default_rng(2)), 0), None)
    assert np.allclose(s.q.alpha, sk.components_, rtol=1e-5)


def test_docstring_corpus_is_deterministic_on_a_small_package(tmp_path, monkeypatch):
    from ngvi_lit.lda import docstring_corpus, tokenize
    pkg = tmp_path / 'lda_fake_pkg'; (pkg / 'tests').mkdir(parents=True)
    (pkg / '__init__.py').write_text('"""Alpha beta gamma. The delta of the alpha."""\n')
    (pkg / 'mod.py').write_text('def f():\n    """Beta gamma gamma, and 3 deltas."""\n\nclass C:\n    """Alpha alpha beta."""\n    def g(self):\n        """Alpha alpha beta."""\n')
    (pkg / 'tests' / 'test_x.py').write_text('def t():\n    """Omega omega omega."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    kw = dict(min_tokens=1, min_df=1, max_df=1., max_vocab=10, min_kept=1)
    X, vocab, lab = docstring_corpus(('lda_fake_pkg',), **kw)
    assert list(vocab) == ['alpha', 'beta', 'delta', 'deltas', 'gamma']     # 'omega' is in a test suite; 'the', 'and' are stop words
    assert X.shape == (3, 5) and X.sum() == len(tokenize('Alpha beta gamma. The delta of the alpha. Beta gamma gamma, and 3 deltas. Alpha alpha beta.'))
    X2, _, _ = docstring_corpus(('lda_fake_pkg',), **kw)
    assert (X2 != X).nnz == 0 and set(lab) == {'lda_fake_pkg'}
    with pytest.raises(ValueError, match='`package`'): docstring_corpus(('no_such_package_xyz',))
