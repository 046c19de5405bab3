"""Property tests for ngvi_lit.families, parametrised over every exponential family."""
import numpy as np
import pytest
import scipy.stats as st
from scipy.special import digamma, gammaln

from ngvi_lit.families import (DiagNormal, ExpFamily, MvNormal, mean_coords_to_sym, nat_coords_to_sym, sym_to_mean_coords,
                               sym_to_nat_coords)
from ngvi_lit.conjugate import Bernoulli, Beta, Categorical, Dirichlet, Gamma, Poisson, Wishart, example_families

FAMILIES = ['MvNormal', 'DiagNormal', 'Bernoulli', 'Categorical', 'Poisson', 'Gamma', 'Beta', 'Dirichlet', 'Wishart']


def fam(name, seed=0):
    return example_families(np.random.default_rng(seed))[name]


def pair(name):
    "Two members of the same family with the same shapes."
    return fam(name, 0), fam(name, 1)


# ------------------------------------------------------------------ references (scipy / closed forms)
def ref_logpdf(q, x):
    n = type(q).__name__
    if n == 'MvNormal': return st.multivariate_normal(q.mean, q.cov).logpdf(x)
    if n == 'DiagNormal': return st.norm(q.mean, np.sqrt(q.var)).logpdf(x).sum(-1)
    if n == 'Bernoulli': return st.bernoulli(q.probs).logpmf(x)
    if n == 'Categorical': return np.log(np.take_along_axis(np.broadcast_to(q.probs, x.shape + (q.num_classes,)),
                                                            x[..., None], -1))[..., 0]
    if n == 'Poisson': return st.poisson(q.rate).logpmf(x)
    if n == 'Gamma': return st.gamma(q.shape, scale=1 / q.rate).logpdf(x)
    if n == 'Beta': return st.beta(q.a, q.b).logpdf(x)
    if n == 'Dirichlet':
        return np.array([[st.dirichlet(a).logpdf(xi) for a, xi in zip(q.alpha, xs)] for xs in x])
    if n == 'Wishart': return st.wishart(df=q.df, scale=q.scale).logpdf(np.moveaxis(x, 0, -1))
    raise KeyError(n)


def ref_entropy(q):
    n = type(q).__name__
    if n == 'MvNormal': return st.multivariate_normal(q.mean, q.cov).entropy()
    if n == 'DiagNormal': return st.norm(q.mean, np.sqrt(q.var)).entropy().sum()
    if n == 'Bernoulli': return st.bernoulli(q.probs).entropy()
    if n == 'Categorical': return st.entropy(q.probs, axis=-1)
    if n == 'Poisson': return st.poisson(q.rate).entropy()
    if n == 'Gamma': return st.gamma(q.shape, scale=1 / q.rate).entropy()
    if n == 'Beta': return st.beta(q.a, q.b).entropy()
    if n == 'Dirichlet': return np.array([st.dirichlet(a).entropy() for a in q.alpha])
    if n == 'Wishart': return st.wishart(df=q.df, scale=q.scale).entropy()
    raise KeyError(n)


def _dirichlet_kl(a, b):
    a0, b0 = a.sum(-1), b.sum(-1)
    return (gammaln(a0) - gammaln(a).sum(-1) - gammaln(b0) + gammaln(b).sum(-1)
            + ((a - b) * (digamma(a) - digamma(a0)[..., None])).sum(-1))


def ref_kl(q, p):
    "Textbook closed forms, written independently of the Bregman formula."
    n = type(q).__name__
    if n == 'MvNormal':
        Si = np.linalg.inv(p.cov); d = q.mean - p.mean
        return 0.5 * (np.trace(Si @ q.cov) + d @ Si @ d - q.dim + np.linalg.slogdet(p.cov)[1] - np.linalg.slogdet(q.cov)[1])
    if n == 'DiagNormal':
        return np.sum(np.log(np.sqrt(p.var / q.var)) + (q.var + (q.mean - p.mean)**2) / (2 * p.var) - 0.5)
    if n == 'Bernoulli':
        a, b = q.probs, p.probs
        return a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))
    if n == 'Categorical': return (q.probs * np.log(q.probs / p.probs)).sum(-1)
    if n == 'Poisson': return q.rate * np.log(q.rate / p.rate) - q.rate + p.rate
    if n == 'Gamma':
        a1, b1, a2, b2 = q.shape, q.rate, p.shape, p.rate
        return (a1 - a2) * digamma(a1) - gammaln(a1) + gammaln(a2) + a2 * (np.log(b1) - np.log(b2)) + a1 * (b2 - b1) / b1
    if n == 'Beta': return _dirichlet_kl(np.stack([q.a, q.b], -1), np.stack([p.a, p.b], -1))
    if n == 'Dirichlet': return _dirichlet_kl(q.alpha, p.alpha)
    if n == 'Wishart':  # KL between Wisharts (e.g. Penny 2001), with D-variate digamma
        D = q.dim; n1, n2, V1, V2 = q.df, p.df, q.scale, p.scale
        psiD = digamma((n1 - np.arange(D)) / 2).sum()
        return ((n1 - n2) / 2 * psiD - n1 * D / 2 + n1 / 2 * np.trace(np.linalg.solve(V2, V1))
                + n2 / 2 * (np.linalg.slogdet(V2)[1] - np.linalg.slogdet(V1)[1])
                + gammaln((n2 - np.arange(D)) / 2).sum() - gammaln((n1 - np.arange(D)) / 2).sum())
    raise KeyError(n)


def _jacobian(f, lam, h):
    "Central-difference Jacobian of f (batch + (P,) -> batch + (P,)) per batch member: batch + (P, P)."
    cols = []
    for k in range(lam.shape[-1]):
        e = np.zeros_like(lam); e[..., k] = h
        cols.append((f(lam + e) - f(lam - e)) / (2 * h))
    return np.stack(cols, -1)


# ------------------------------------------------------------------ parameter maps
@pytest.mark.parametrize('name', FAMILIES)
@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_round_trip_natural_mean_natural(name, seed):
    q = fam(name, seed)
    cls = type(q)
    back = cls.from_mean_vec(q.mean_vec)
    np.testing.assert_allclose(back.nat_vec, q.nat_vec, rtol=1e-10, atol=1e-12 * np.abs(q.nat_vec).max())
    np.testing.assert_allclose(cls.from_nat_vec(q.nat_vec).mean_vec, q.mean_vec, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize('name', FAMILIES)
def test_structured_round_trips(name):
    q = fam(name)
    cls = type(q)
    np.testing.assert_allclose(cls.from_natural(*q.natural).nat_vec, q.nat_vec, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cls.from_mean(*q.mean_params).nat_vec, q.nat_vec, rtol=1e-10, atol=1e-12)
    assert isinstance(q.moments(), dict)


@pytest.mark.parametrize('name', FAMILIES)
def test_grad_log_partition_is_mean(name):
    q = fam(name)
    cls = type(q)
    g = _jacobian(lambda l: np.asarray(cls.from_nat_vec(l).log_partition())[..., None], q.nat_vec, 1e-6)[..., 0, :]
    np.testing.assert_allclose(g, q.grad_log_partition(), rtol=1e-7, atol=1e-8 * np.abs(g).max())


@pytest.mark.parametrize('name', FAMILIES)
def test_fisher_is_jacobian_of_mean_map(name):
    q = fam(name)
    cls = type(q)
    J = _jacobian(lambda l: cls.from_nat_vec(l).mean_vec, q.nat_vec, 1e-6)
    F = q.fisher()
    assert F.shape == q.batch_shape + (q.nat_size, q.nat_size)
    np.testing.assert_allclose(J, F, rtol=1e-6, atol=1e-6 * np.abs(F).max())
    np.testing.assert_allclose(F, np.swapaxes(F, -1, -2), rtol=1e-12, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(F) > 0)                     # minimal family: F is SPD


@pytest.mark.parametrize('name', FAMILIES)
def test_hessian_of_log_partition(name):
    "Second differences of A along random directions equal v^T F v."
    q = fam(name)
    cls, lam = type(q), q.nat_vec
    v = np.random.default_rng(5).standard_normal(lam.shape)
    h = 1e-4
    A = lambda l: cls.from_nat_vec(l).log_partition()
    d2 = (A(lam + h * v) - 2 * A(lam) + A(lam - h * v)) / h**2
    np.testing.assert_allclose(d2, (v * q.fvp(v)).sum(-1), rtol=1e-5)


@pytest.mark.parametrize('name', FAMILIES)
def test_fvp_matches_dense_fisher(name):
    q = fam(name)
    v = np.random.default_rng(2).standard_normal(q.nat_vec.shape)
    np.testing.assert_allclose(q.fvp(v), np.einsum('...ij,...j->...i', q.fisher(), v), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match='`v`'):
        q.fvp(np.ones(q.nat_size + 1))


def test_sym_coordinate_maps():
    rng = np.random.default_rng(0)
    E = rng.standard_normal((2, 4, 4)); E = E + np.swapaxes(E, -1, -2)
    M = rng.standard_normal((2, 4, 4)); M = M + np.swapaxes(M, -1, -2)
    np.testing.assert_allclose(nat_coords_to_sym(sym_to_nat_coords(E), 4), E)
    np.testing.assert_allclose(mean_coords_to_sym(sym_to_mean_coords(M), 4), M)
    np.testing.assert_allclose((sym_to_nat_coords(E) * sym_to_mean_coords(M)).sum(-1), np.einsum('bij,bji->b', E, M))


# ------------------------------------------------------------------ densities, entropy, KL
@pytest.mark.parametrize('name', FAMILIES)
def test_log_prob_matches_scipy(name):
    q = fam(name)
    x = q.sample(np.random.default_rng(4), 5)
    np.testing.assert_allclose(q.log_prob(x), ref_logpdf(q, x), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ExpFamily.log_prob(q, x), ref_logpdf(q, x), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize('name', FAMILIES)
def test_entropy_matches_scipy(name):
    q = fam(name)
    np.testing.assert_allclose(q.entropy(), ref_entropy(q), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ExpFamily.entropy(q), ref_entropy(q), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize('name', FAMILIES)
def test_kl_matches_closed_form(name):
    q, p = pair(name)
    np.testing.assert_allclose(q.kl(p), ref_kl(q, p), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ExpFamily.kl(q, p), ref_kl(q, p), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(q.kl(q), 0.0, atol=1e-10)
    assert np.all(np.asarray(q.kl(p)) > 0)


@pytest.mark.parametrize('name', FAMILIES)
def test_entropy_and_kl_monte_carlo(name):
    "E_q[-log q] and E_q[log q - log p] within 4 standard errors (fixed seed)."
    q, p = pair(name)
    x = q.sample(np.random.default_rng(11), 4000)
    lq, lp = q.log_prob(x), p.log_prob(x)
    for vals, exact in [(-lq, q.entropy()), (lq - lp, q.kl(p))]:
        se = vals.std(0) / np.sqrt(len(vals))
        assert np.all(np.abs(vals.mean(0) - exact) <= 4 * se + 1e-12), (name, vals.mean(0), exact, se)


@pytest.mark.parametrize('name', FAMILIES)
def test_sampling_moments(name):
    "The sample mean of T(x) is within 4 standard errors of mu, componentwise."
    q = fam(name)
    x = q.sample(np.random.default_rng(12), 4000)
    assert x.shape[:1 + len(q.batch_shape)] == (4000,) + q.batch_shape
    T = q.sufficient_stats(x)
    se = T.std(0) / np.sqrt(len(T))
    assert np.all(np.abs(T.mean(0) - q.mean_vec) <= 4 * se + 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize('name', FAMILIES)
def test_sampling_moments_many_seeds(name):
    "Same as above over 20 seeds: the 4-stderr rule should fail for (almost) no component."
    q = fam(name)
    bad = total = 0
    for s in range(20):
        T = q.sufficient_stats(q.sample(np.random.default_rng(100 + s), 2000))
        z = np.abs(T.mean(0) - q.mean_vec) / (T.std(0) / np.sqrt(len(T)) + 1e-300)
        bad += int((z > 4).sum()); total += z.size
    assert bad <= max(1, total // 1000)


# ------------------------------------------------------------------ validity checks
BAD_NATURAL = [
    (MvNormal, [0, 0, 1.0, 0.0, -1.0], 'eta2'),
    (DiagNormal, [0.0, 0.0, -1.0, 0.5], 'eta2'),
    (Bernoulli, [[np.nan]], 'nat_vec'),
    (Categorical, [[0.0, np.inf]], 'nat_vec'),
    (Poisson, [[np.nan]], 'nat_vec'),
    (Gamma, [[0.5, 1.0]], 'eta2'),
    (Gamma, [[-1.5, -1.0]], 'eta1'),
    (Beta, [[-1.0, 0.0]], 'eta1'),
    (Beta, [[0.0, -3.0]], 'eta2'),
    (Dirichlet, [[0.5, -1.5, 1.0]], 'eta'),
    (Wishart, [-3.0, -1.0, 0.0, -1.0], 'eta1'),
    (Wishart, [1.0, -1.0, 0.0, 1.0], 'eta2'),
]


@pytest.mark.parametrize('cls, bad, pname', BAD_NATURAL)
def test_invalid_natural_raises_naming_parameter(cls, bad, pname):
    with pytest.raises(ValueError, match=f'`{pname}`'):
        cls.from_nat_vec(bad)
    assert not np.all(cls.in_domain(np.asarray(bad, float)))


@pytest.mark.parametrize('make, pname', [
    (lambda: MvNormal([0, 0], [[1, 2], [2, 1]]), 'cov'),
    (lambda: MvNormal.from_natural([0, 0], np.eye(2)), 'eta2'),
    (lambda: DiagNormal([0, 0], [1, -1]), 'var'),
    (lambda: Bernoulli([0.5, 1.0]), 'probs'),
    (lambda: Categorical([0.5, 0.6]), 'probs'),
    (lambda: Poisson([-1.0]), 'rate'),
    (lambda: Gamma(-1.0, 1.0), 'shape'),
    (lambda: Gamma(1.0, 0.0), 'rate'),
    (lambda: Gamma.from_natural(0.0, 0.5), 'eta2'),
    (lambda: Beta(0.0, 1.0), 'a'),
    (lambda: Beta(1.0, -2.0), 'b'),
    (lambda: Dirichlet([1.0, -1.0]), 'alpha'),
    (lambda: Wishart(1.0, np.eye(3)), 'df'),
    (lambda: Wishart(5.0, -np.eye(3)), 'scale'),
    (lambda: Gamma.from_mean(1.0, 1.0), 'mean_vec'),      # E log x > log E x violates Jensen
    (lambda: Dirichlet.from_mean([-0.1, -0.1]), 'mean_vec'),
    (lambda: Gamma(2.0, 1.0).log_prob(-1.0), 'x'),
    (lambda: Bernoulli(0.3).log_prob(0.5), 'x'),
])
def test_invalid_arguments_raise_naming_them(make, pname):
    with pytest.raises(ValueError, match=f'`{pname}`'):
        make()


# ------------------------------------------------------------------ batches
@pytest.mark.parametrize('name', ['Bernoulli', 'Categorical', 'Poisson', 'Gamma', 'Beta', 'Dirichlet'])
def test_batch_equals_members(name):
    q, p = pair(name)
    cls = type(q)
    x = q.sample(np.random.default_rng(7), 3)
    lp, H, kl, F = q.log_prob(x), q.entropy(), q.kl(p), q.fisher()
    assert lp.shape == (3,) + q.batch_shape and np.shape(H) == q.batch_shape and np.shape(kl) == q.batch_shape
    for i in np.ndindex(*q.batch_shape):
        qi, pi = cls.from_nat_vec(q.nat_vec[i]), cls.from_nat_vec(p.nat_vec[i])
        np.testing.assert_allclose(qi.log_prob(x[(slice(None),) + i]), lp[(slice(None),) + i], rtol=1e-12)
        np.testing.assert_allclose(qi.entropy(), H[i], rtol=1e-12)
        np.testing.assert_allclose(qi.kl(pi), kl[i], rtol=1e-12)
        np.testing.assert_allclose(qi.fisher(), F[i], rtol=1e-12)


@pytest.mark.parametrize('cls, args', [(Gamma, ([[1.0, 2.0, 3.0]], [[1.0], [2.0]])), (Beta, (2.0, [[1.0, 2.0, 5.0], [3.0, 4.0, 0.5]])),
                                       (Poisson, (np.ones((2, 3)),)), (Bernoulli, (np.full((2, 3), 0.3),))])
def test_two_dimensional_batch_and_broadcasting(cls, args):
    q = cls(*args)
    assert q.batch_shape == (2, 3)
    assert q.sample(np.random.default_rng(0), 4).shape == (4, 2, 3)
    assert q.fisher().shape == (2, 3, q.nat_size, q.nat_size)
    assert np.shape(q.entropy()) == (2, 3)


def test_parameters_are_immutable():
    for name in FAMILIES:
        q = fam(name)
        arr = q.mean if name == 'MvNormal' else q.nat_vec
        with pytest.raises(ValueError):
            arr[..., 0] = 1.0


# ------------------------------------------------------------------ family-specific facts
def test_mvnormal_existing_api():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 3)); S = A @ A.T + np.eye(3); m = rng.standard_normal(3)
    q = MvNormal.from_precision(m, S)
    np.testing.assert_allclose(q.prec, S, rtol=1e-14)
    np.testing.assert_allclose(q.chol_prec @ q.chol_prec.T, S, rtol=1e-12)
    e1, e2 = q.natural
    np.testing.assert_allclose(e1, S @ m) and np.testing.assert_allclose(e2, -S / 2)
    mm, M2 = q.mean_params
    np.testing.assert_allclose(M2, q.cov + np.outer(m, m), rtol=1e-12)
    assert q.sample(rng, 7).shape == (7, 3) and q.log_prob(np.zeros(3)).shape == ()
    assert isinstance(q.entropy(), float) and isinstance(q.kl(q), float)
    mo = q.moments()
    np.testing.assert_allclose(mo['chol_cov'] @ mo['chol_cov'].T, q.cov, rtol=1e-12)


def test_diag_normal_embeds_in_mvnormal():
    q, p = pair('DiagNormal')
    np.testing.assert_allclose(q.kl(p), q.to_mvnormal().kl(p.to_mvnormal()), rtol=1e-10)
    np.testing.assert_allclose(q.entropy(), q.to_mvnormal().entropy(), rtol=1e-12)


@pytest.mark.parametrize('shape', [0.02, 0.3, 1.0, 5.0, 80.0, 1000.0])
def test_gamma_newton_accuracy_over_shapes(shape):
    q = Gamma(shape, 3.0)
    back = Gamma.from_mean_vec(q.mean_vec)
    assert abs(back.shape / shape - 1) < 1e-9
    np.testing.assert_allclose(back.mean_vec, q.mean_vec, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize('alpha', [[0.1, 0.2], [0.5, 50.0], [3.0, 3.0, 3.0, 3.0], [200.0, 1.0, 0.3]])
def test_dirichlet_newton_hard_cases(alpha):
    q = Dirichlet(alpha)
    back = Dirichlet.from_mean_vec(q.mean_vec)
    np.testing.assert_allclose(back.alpha, q.alpha, rtol=1e-8)
    np.testing.assert_allclose(back.mean_vec, q.mean_vec, rtol=1e-12, atol=1e-13)


def test_beta_is_dirichlet_with_two_classes():
    q = Beta([0.7, 3.0], [2.0, 0.4])
    d = Dirichlet(np.stack([q.a, q.b], -1))
    np.testing.assert_allclose(q.mean_vec, d.mean_vec, rtol=1e-13)
    np.testing.assert_allclose(q.fisher(), d.fisher(), rtol=1e-13)
    np.testing.assert_allclose(q.log_partition(), d.log_partition(), rtol=1e-13)


def test_wishart_mean_and_fisher_against_monte_carlo():
    q = fam('Wishart')
    X = q.sample(np.random.default_rng(3), 4000)
    se = X.std(0) / np.sqrt(len(X))
    assert np.all(np.abs(X.mean(0) - q.df * q.scale) <= 4 * se)


def test_poisson_entropy_large_rate():
    q = Poisson([1e-3, 500.0])
    np.testing.assert_allclose(q.entropy(), st.poisson(q.rate).entropy(), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ issue 16: large rates, tiny shapes, lengths
def test_poisson_entropy_huge_rate_is_asymptotic_and_fast():
    import time
    t0 = time.perf_counter()
    H = Poisson(1e8).entropy()
    dt = time.perf_counter() - t0
    # H = 1/2 log(2 pi e r) - 1/(12 r) + O(r^-2): at r = 1e8 the correction is ~1e-9
    assert abs(H - 0.5 * np.log(2 * np.pi * np.e * 1e8)) < 1e-8 and dt < 0.5
    H = Poisson([1e3, 1e12, 1e300]).entropy()
    assert np.all(np.isfinite(H)) and np.allclose(H, 0.5 * np.log(2 * np.pi * np.e * np.array([1e3, 1e12, 1e300])), atol=1e-4)


@pytest.mark.parametrize('r', [50.0, 99.0, 100.0, 101.0, 300.0, 1000.0])
def test_poisson_entropy_series_and_expansion_agree(r):
    "Direct -sum p log p in float64; tolerance from its rounding (~u r log^2 r) and the expansion's truncation (~40 r^-8)."
    k = np.arange(int(r + 12 * np.sqrt(r) + 30) + 1)
    lp = k * np.log(r) - r - gammaln(k + 1.0)
    H_sum = -(np.exp(lp) * lp).sum() / np.exp(lp).sum()
    tol = np.finfo(float).eps * r * np.log(r)**2 + 50.0 / r**8
    assert abs(Poisson(r).entropy() - H_sum) <= tol
    assert np.isfinite(Poisson(r)._expected_log_base())


@pytest.mark.parametrize('make, closed', [
    (lambda a: Gamma(a, 2.0), lambda a: a - np.log(2.0) + gammaln(a) + (1 - a) * digamma(a)),
    (lambda a: Beta(a, 2.0), lambda a: (gammaln(a) + gammaln(2.0) - gammaln(a + 2.0)) - (a - 1) * digamma(a)
                                       - digamma(2.0) + a * digamma(a + 2.0)),
    (lambda a: Dirichlet([a, 2.0, 3.0]), lambda a: st.dirichlet([a, 2.0, 3.0]).entropy()),
])
@pytest.mark.parametrize('a', [1e-300, 1e-100, 1e-17, 1e-9, 1e-3, 0.7])  # the last two check the closed forms
def test_tiny_shape_entropy_and_kl_are_finite_and_right(make, closed, a):
    q = make(a)
    H = q.entropy()
    assert np.isfinite(H) and np.isclose(H, closed(a), rtol=1e-12)
    p = make(1.0)
    for kl in (q.kl(p), p.kl(q)):
        assert np.all(np.isfinite(kl)) and np.all(kl > 0)
    assert q.kl(q) == 0


def test_tiny_gamma_kl_matches_closed_form():
    def kl(a, b, c, d): return (a - c) * digamma(a) - gammaln(a) + gammaln(c) + c * np.log(b / d) + a * (d - b) / b
    q, p = Gamma(1e-300, 2.0), Gamma(1.5, 0.5)
    assert np.isclose(q.kl(p), kl(1e-300, 2.0, 1.5, 0.5), rtol=1e-13)
    assert np.isclose(p.kl(q), kl(1.5, 0.5, 1e-300, 2.0), rtol=1e-13)


@pytest.mark.parametrize('make, pname', [(lambda: Gamma(1e-310, 1.0), 'shape'), (lambda: Beta(1e-320, 1.0), 'a'),
                                         (lambda: Beta(1.0, 5e-309), 'b'), (lambda: Dirichlet([1.0, 1e-310]), 'alpha')])
def test_shape_below_digamma_range_raises_naming_it(make, pname):
    with pytest.raises(ValueError, match=f'`{pname}`.*overflows'):
        make()


WRONG_LENGTH = [(Gamma, [0.5, -1.0, 3.0]), (Gamma, [0.5]), (Beta, [0.5, 0.5, 0.5]), (Beta, [0.1]),
                (Bernoulli, [0.1, 0.2]), (Poisson, np.zeros((3, 2))), (Dirichlet, [0.5]), (Categorical, np.zeros(0)),
                (DiagNormal, [1.0, -1.0, 2.0]), (DiagNormal, np.zeros(0)), (MvNormal, [1.0, -1.0, 3.0]),
                (Wishart, [1.0]), (Wishart, [1.0, -1.0, 0.0])]


@pytest.mark.parametrize('cls, bad', WRONG_LENGTH)
@pytest.mark.parametrize('which', ['nat_vec', 'mean_vec'])
def test_wrong_trailing_length_raises_naming_argument(cls, bad, which):
    build = cls.from_nat_vec if which == 'nat_vec' else cls.from_mean_vec
    with pytest.raises(ValueError, match=f'`{which}`.*(last axis|length|shape)'):
        build(np.asarray(bad, float))
