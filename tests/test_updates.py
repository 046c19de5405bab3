"Updates: conjugate one-step exactness, iBLR positive-definiteness, back-off, schedules, CVI."
import numpy as np
import pytest
from ngvi_lit.families import MvNormal
from ngvi_lit.models import LinearRegression, StudentTRegression, LogisticRegression
from ngvi_lit.updates import ngvi_gaussian_step, iblr_step, ngvi_diag_step, safe_step, backtracking_step
from ngvi_lit.schedules import constant, robbins_monro, warmup, as_schedule, growing_batch, PolyakAverage

@pytest.mark.parametrize('seed', range(5))
def test_conjugate_one_step_exact(seed):
    rng = np.random.default_rng(seed)
    D = 2 + seed
    X = rng.standard_normal((30, D)) * np.logspace(0, 3, D); y = X @ rng.standard_normal(D) + rng.standard_normal(30)
    mod = LinearRegression(X, y, 1., MvNormal(np.zeros(D), 100 * np.eye(D)))
    q1 = ngvi_gaussian_step(mod.prior, *mod.expected_grad_hess(mod.prior), 1.)
    assert q1.kl(mod.exact_posterior()) < 1e-10

@pytest.mark.parametrize('seed', range(20))
def test_iblr_always_spd(seed):
    rng = np.random.default_rng(seed)
    D = 4
    B = rng.standard_normal((D, D)); S = B @ B.T + .1 * np.eye(D)
    H = rng.standard_normal((D, D)) * 10; H = H + H.T                  # arbitrary indefinite
    q = MvNormal.from_precision(rng.standard_normal(D), S)
    for rho in (1e-6, .3, 1.):
        qn = iblr_step(q, rng.standard_normal(D), H, rho)
        assert np.linalg.eigvalsh(qn.prec).min() > 0
        G = S - H
        np.testing.assert_allclose(qn.prec, S - rho * G + rho**2 / 2 * G @ np.linalg.solve(S, G), rtol=1e-8, atol=1e-8)

def test_plain_step_rejects_and_safe_step_backs_off():
    S = np.eye(2); H = np.diag([1., -3.])
    q = MvNormal.from_precision(np.zeros(2), S)
    with pytest.raises(ValueError, match='rho'): ngvi_gaussian_step(q, np.ones(2), H, 1.)
    out = safe_step(q, np.ones(2), H, 1., rule='plain')
    assert out.rho == .125 and out.n_rejected == 3 and out.n_invalid == 3     # 1 - 4 rho > 0 first at rho = 1/8
    assert np.linalg.eigvalsh(out.q.prec).min() > 0

def test_diag_step_positive_and_fixed_point():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 3)); y = X @ np.ones(3) + rng.standard_normal(40)
    mod = LinearRegression(X, y, 1., 10.)
    q = mod.prior
    for _ in range(300): q = ngvi_diag_step(q, *mod.expected_grad_hess(q), .5)
    post = mod.exact_posterior()
    np.testing.assert_allclose(q.mean, post.mean, atol=1e-8)
    np.testing.assert_allclose(np.diag(q.prec), np.diag(post.prec), rtol=1e-8)

@pytest.mark.parametrize('rho', [0, -.1, 1.5, np.nan, 'a'])
def test_step_size_outside_unit_interval(rho):
    q = MvNormal(np.zeros(2), np.eye(2))
    for fn in (ngvi_gaussian_step, iblr_step, ngvi_diag_step):
        with pytest.raises(ValueError, match='rho'): fn(q, np.zeros(2), np.eye(2), rho)
    with pytest.raises(ValueError, match='rho'): as_schedule(rho)

def test_nonfinite_gradient_rejected():
    q = MvNormal(np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match='grad'): iblr_step(q, np.array([np.nan, 0.]), np.eye(2), .5)
    with pytest.raises(ValueError, match='hess'): iblr_step(q, np.zeros(2), np.full((2, 2), np.inf), .5)

def test_backtracking_monotone_on_student_t():
    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(50), rng.standard_normal(50)]); y = X @ [1., 2.] + .3 * rng.standard_t(3, 50); y[:5] += 15
    st = StudentTRegression(X, y, 100., nu=3., scale=.3)
    q = MvNormal(np.array([11., 2.]), 1e-2 * np.eye(2)); ex = st.expectations(q)
    for rule in ('iblr', 'plain'):
        qq, e0 = q, ex
        for _ in range(20):
            out = backtracking_step(qq, e0, st.expectations, 1., rule)
            assert out.ex.elbo >= e0.elbo - 1e-9 and np.linalg.eigvalsh(out.q.prec).min() > 0
            qq, e0 = out.q, out.ex

def test_schedules():
    assert constant(.3)(100) == .3
    rm = robbins_monro(.8, tau=5, kappa=.6)
    assert rm(0) == .8 and abs(rm(5) - .8 * 2**-.6) < 1e-15
    with pytest.raises(ValueError, match='kappa'): robbins_monro(kappa=.5)
    with pytest.raises(ValueError, match='tau'): robbins_monro(tau=0)
    w = warmup(constant(1.), 10, .1)
    assert w(0) == .1 and w(10) == 1. and w(100) == 1.
    with pytest.raises(ValueError, match=r'rho\(0\)'): as_schedule(lambda t: 2.)(0)
    assert [growing_batch(4, 2., 3)(t) for t in (0, 3, 7)] == [4, 8, 16]
    with pytest.raises(ValueError, match='growth'): growing_batch(4, .5)
    with pytest.raises(ValueError, match='average_from'): PolyakAverage(-1)


def _standardised_logistic(N=120, D=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)); y = (X @ rng.standard_normal(D) + rng.logistic(size=N) > 0) * 1.
    return LogisticRegression(np.column_stack([np.ones(N), X]), y, 5.)


def test_diag_fit_with_cg_solver_matches_cholesky():
    "The coupled mean step solved by preconditioned CG reaches the same mean-field optimum as by Cholesky."
    from ngvi_lit.fit import fit
    m = _standardised_logistic()
    a, b = (fit(m, rng=np.random.default_rng(0), rule='diag', solver=s, max_iter=100) for s in ('cholesky', 'cg'))
    assert a.status == b.status == 'converged'
    assert abs(a.elbo - b.elbo) < 1e-8 * (1 + abs(a.elbo))
    np.testing.assert_allclose(b.q.mean, a.q.mean, rtol=1e-6, atol=1e-8)
    assert b.options['solver'] == 'cg'


def test_solver_option_errors_name_the_argument():
    from ngvi_lit.updates import NGVI
    with pytest.raises(ValueError, match='`solver`'): NGVI(solver='lu')
    with pytest.raises(ValueError, match="`solver`='cg' applies to the diagonal rules"): NGVI(solver='cg')
    with pytest.raises(ValueError, match='`solver`'): ngvi_diag_step(MvNormal(np.zeros(2), np.eye(2)), np.ones(2), np.eye(2), .5, solver='qr')


def test_gaussian_step_accepts_a_rule_function():
    from ngvi_lit.updates import gaussian_step
    q = MvNormal(np.zeros(2), np.eye(2)); g, H = np.ones(2), 2 * np.eye(2)
    own = lambda q, g, H, r: ngvi_gaussian_step(q, g, H, r)
    a, b = gaussian_step(q, g, H, .5, own), gaussian_step(q, g, H, .5, 'plain')
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.prec, b.prec)
    with pytest.raises(ValueError, match='`rule`'): gaussian_step(q, g, H, .5, 'newton')


def _separable(sd, n=40):
    x = np.random.default_rng(0).standard_normal(n)
    return LogisticRegression(np.column_stack([np.ones(n), x]), (x > 0) * 1., sd)

@pytest.mark.parametrize('sd', [1e2, 1e4])
def test_separable_weak_prior_converges_fast_by_default(sd):
    "Issue 10: separable data, intercept + 1 feature, prior sd 100 and 1e4: <= 50 iterations, same optimum as without the Newton safeguard."
    from ngvi_lit.fit import fit
    m = _separable(sd)
    r = fit(m, rng=np.random.default_rng(0), max_iter=2000)
    slow = fit(m, rng=np.random.default_rng(0), max_iter=2000, newton=False)
    assert r.status == slow.status == 'converged' and r.nit <= 50 < slow.nit
    assert abs(r.elbo - slow.elbo) < 1e-8 * (1 + abs(r.elbo))

def test_chol_newton_step_never_lowers_the_elbo_and_says_when_it_cannot_step():
    from ngvi_lit.updates import chol_newton_step, NGVI
    m = _separable(1e4); ex = m.expectations(m.prior)
    out = chol_newton_step(m.prior, ex, m.elbo_chol_system(m.prior), m.expectations)
    assert out.rho > 0 and out.ex.elbo >= ex.elbo
    g, H, L = m.elbo_chol_system(m.prior)
    flat = chol_newton_step(m.prior, ex, (g, -H, L), m.expectations)       # a convex "Hessian": no ascent direction
    assert flat.rho == 0 and flat.q is m.prior and 'negative definite' in flat.message
    with pytest.raises(ValueError, match='grad'): chol_newton_step(m.prior, ex, (g[:-1], H, L), m.expectations)
    with pytest.raises(ValueError, match='newton'): NGVI(newton='yes')


def test_newton_safeguard_is_tried_where_it_is_cheap_or_affordable():
    from ngvi_lit.updates import _newton_when
    from ngvi_lit.sources import ArraySource
    rng = np.random.default_rng(0)
    small = LogisticRegression(rng.standard_normal((40, 2)), np.ones(40), 1.)
    mid = LogisticRegression(rng.standard_normal((500, 30)), np.ones(500), 1.)
    big = LogisticRegression(rng.standard_normal((100, 80)), np.ones(100), 1.)
    streamed = LogisticRegression(ArraySource(rng.standard_normal((40, 2)), np.ones(40)), None, 1.)
    assert [_newton_when(m) for m in (small, mid, big, streamed)] == ['always', 'damped', None, None]
