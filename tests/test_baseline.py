"The Adam baseline: same API and result type, correct gradients, tuning, comparison table, faults."
import numpy as np
import pytest
from ngvi_lit.families import MvNormal
from ngvi_lit.models import LinearRegression, LogisticRegression
from ngvi_lit.fit import fit, FitResult
from ngvi_lit.baseline import AdamVI
from ngvi_lit.compare import tune_adam, compare_ngvi_adam, format_comparison

def _lin():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)); return LinearRegression(X, X @ [1., -1., .5] + .5 * rng.standard_normal(40), .25, 3.)

def test_reparam_gradient_is_unbiased():
    "Mean of the Adam ELBO gradient over many draws equals finite differences of the exact ELBO in m."
    mod = _lin(); algo = AdamVI(n_samples=20000)
    s = algo.init(mod)
    rng = np.random.default_rng(1)
    lp, g = algo._logp_grad(mod, s.m + rng.standard_normal((20000, 3)) @ np.linalg.cholesky(mod.prior.cov).T)
    h = 1e-5; q = mod.prior
    fd = [(mod.elbo(MvNormal.from_precision(q.mean + h * e, q.prec)) - mod.elbo(MvNormal.from_precision(q.mean - h * e, q.prec))) / (2 * h)
          for e in np.eye(3)]
    assert np.all(np.abs(g.mean(0) - fd) < 5 * g.std(0) / np.sqrt(len(g)))

def test_adam_converges_on_conjugate_model():
    mod = _lin()
    res = fit(mod, 'adam', rng=np.random.default_rng(0), lr=.01, n_samples=16, max_iter=5000)
    assert isinstance(res, FitResult) and res.method == 'adam' and res.q.kl(mod.exact_posterior()) < .1

def test_tune_and_compare():
    rng = np.random.default_rng(2)
    X = np.column_stack([np.ones(150), rng.standard_normal((150, 2)) * [1, 30]])
    y = (rng.random(150) < 1 / (1 + np.exp(-X @ [.5, 1., .03]))) * 1.
    mod = LogisticRegression(X, y, 10.)
    best, scores = tune_adam(mod, (1e-3, 1e-1), rng=np.random.default_rng(0), max_iter=300)
    assert best.options['lr'] == max(scores, key=scores.get)
    cmp = compare_ngvi_adam(mod, rng=np.random.default_rng(0), adam_iter=300, lrs=(1e-2,), mc=False)
    assert [r['method'] for r in cmp.rows][0] == 'NGVI (exact)' and cmp.rows[0]['gap'] < 1e-6
    assert 'gap' in format_comparison(cmp)

def test_resume_adam(tmp_path):
    mod = _lin()
    full = fit(mod, 'adam', rng=np.random.default_rng(3), lr=.01, max_iter=50)
    fit(mod, 'adam', rng=np.random.default_rng(3), lr=.01, max_iter=20, save=str(tmp_path / 'a.npz'))
    res = fit(mod, 'adam', rng=np.random.default_rng(0), max_iter=50, resume=str(tmp_path / 'a.npz'))
    assert np.array_equal(res.q.mean, full.q.mean) and np.array_equal(res.history['elbo'], full.history['elbo'])

@pytest.mark.parametrize('kw,arg', [(dict(lr=0), 'lr'), (dict(lr=np.inf), 'lr'), (dict(n_samples=0), 'n_samples'), (dict(beta1=1.), 'beta1')])
def test_bad_options(kw, arg):
    with pytest.raises(ValueError, match=arg): fit(_lin(), 'adam', rng=np.random.default_rng(0), **kw)

def test_nan_model_stops():
    class Bad(LinearRegression):
        def grad_log_lik(self, z): return np.full(np.shape(z), np.nan)
    mod = _lin(); bad = Bad(mod.X, mod.y, .25, 3.)
    bad.lik = bad.lik._replace(loglik=lambda y, eta: tuple(np.full(np.shape(eta), np.nan) for _ in range(3)))
    res = fit(bad, 'adam', rng=np.random.default_rng(0), max_iter=10)
    assert res.status == 'failed' and res.nit == 0 and np.all(np.isfinite(res.q.mean))
