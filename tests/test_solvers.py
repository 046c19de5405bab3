"""Property tests for ngvi_lit.solvers: Cholesky, CG, damping rules, diagonal and K-FAC solves."""
import numpy as np
import pytest

from ngvi_lit.solvers import (CGResult, cg_solve, diag_solve, glm_fisher_problem, jacobi_preconditioner,
                              kfac_pi, kfac_solve, lm_damping_update, nystrom_preconditioner, reduction_ratio,
                              rel_error, angle_deg, softmax_layer_problem, solve_spd)


def _spd(rng, D, cond=None):
    "Random SPD matrix; with `cond`, eigenvalues log-spaced to that exact condition number."
    Q = np.linalg.qr(rng.standard_normal((D, D)))[0]
    lam = np.logspace(0, np.log10(cond), D) if cond else rng.uniform(0.1, 10, D)
    return (Q * lam) @ Q.T


def _vec(M):
    return M.reshape(-1, order='F')


# ---------------------------------------------------------------- solve_spd
@pytest.mark.parametrize('D', [1, 5, 40, 150])
@pytest.mark.parametrize('k', [None, 1, 3])
def test_solve_spd_matches_numpy(rng, D, k):
    F = _spd(rng, D)
    g = rng.standard_normal(D if k is None else (D, k))
    x = solve_spd(F, g)
    assert x.shape == g.shape
    assert rel_error(x, np.linalg.solve(F, g)) < 1e-10


@pytest.mark.parametrize('damping', [0.0, 1e-3, 1.0, 1e3])
def test_solve_spd_damping_is_shift(rng, damping):
    F = _spd(rng, 30)
    g = rng.standard_normal((30, 2))
    assert rel_error(solve_spd(F, g, damping), np.linalg.solve(F + damping * np.eye(30), g)) < 1e-10


def test_damping_rescues_indefinite(rng):
    F = _spd(rng, 20) - 0.5 * np.eye(20) - np.diag(np.r_[np.zeros(19), 10.0])
    g = rng.standard_normal(20)
    lam_min = np.linalg.eigvalsh(F)[0]
    with pytest.raises(ValueError, match=r'`F`.*not positive definite.*smallest eigenvalue.*damping'):
        solve_spd(F, g)
    x = solve_spd(F, g, damping=-lam_min + 1.0)
    assert rel_error(x, np.linalg.solve(F + (-lam_min + 1.0) * np.eye(20), g)) < 1e-10


@pytest.mark.parametrize('F, g, match', [
    (np.eye(3), np.ones(4), r'`g`.*shape \(3,\)'),
    (np.eye(3), np.ones((4, 2)), r'`g`.*shape'),
    (np.ones((3, 2)), np.ones(3), r'`F`.*square'),
    (np.ones(3), np.ones(3), r'`F`.*2 dimension'),
    (np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones(2), r'`F`.*symmetric'),
    (np.array([[1.0, np.nan], [np.nan, 1.0]]), np.ones(2), r'`F`.*non-finite'),
    (np.eye(2), np.array([1.0, np.inf]), r'`g`.*non-finite'),
])
def test_solve_spd_bad_input_names_argument(F, g, match):
    with pytest.raises(ValueError, match=match):
        solve_spd(F, g)


@pytest.mark.parametrize('damping', [-1.0, np.nan, 'a'])
def test_solve_spd_bad_damping(damping):
    with pytest.raises(ValueError, match='`damping`'):
        solve_spd(np.eye(2), np.ones(2), damping)


# ---------------------------------------------------------------- cg_solve
@pytest.mark.parametrize('D, cond', [(10, 10.0), (80, 1e3), (200, 1e5)])
@pytest.mark.parametrize('precond', [None, 'jacobi'])
def test_cg_converges_to_tolerance(rng, D, cond, precond):
    F = _spd(rng, D, cond)
    g = rng.standard_normal(D)
    M = None if precond is None else jacobi_preconditioner(np.diag(F))
    res = cg_solve(lambda v: F @ v, g, precond=M, tol=1e-12)
    assert isinstance(res, CGResult) and res.converged, res.message
    assert res.rel_residual <= 1e-12 and len(res.residuals) == res.iterations + 1
    assert rel_error(res.x, np.linalg.solve(F, g)) < cond * 1e-11


def test_cg_jacobi_fixes_scaling(rng):
    "With F = S C S (badly scaled units), Jacobi needs far fewer products than plain CG."
    C = _spd(rng, 100, 10.0)
    s = 10 ** rng.uniform(-2, 2, 100)
    F = C * np.outer(s, s)
    g = rng.standard_normal(100)
    plain = cg_solve(lambda v: F @ v, g, tol=1e-10, maxiter=5000)
    jac = cg_solve(lambda v: F @ v, g, precond=jacobi_preconditioner(np.diag(F)), tol=1e-10)
    assert jac.converged and jac.iterations < plain.iterations / 3


def test_cg_glm_problem_with_nystrom(rng):
    pb = glm_fisher_problem(300, np.random.default_rng(1), n=150, spread=0.0, factors=15)
    xs = solve_spd(pb.dense(), pb.g)
    M = nystrom_preconditioner(pb.fvp, pb.dim, 40, rng, shift=pb.prior_prec)
    res = cg_solve(pb.fvp, pb.g, precond=M, tol=1e-12)
    plain = cg_solve(pb.fvp, pb.g, tol=1e-12)
    assert res.converged and rel_error(res.x, xs) < 1e-8
    assert res.iterations < plain.iterations


def test_cg_reports_nonconvergence_within_maxiter(rng):
    F = _spd(rng, 100, 1e6)
    g = rng.standard_normal(100)
    res = cg_solve(lambda v: F @ v, g, tol=1e-14, maxiter=5)
    assert not res.converged and res.iterations == 5 and 'maxiter' in res.message
    assert np.all(np.isfinite(res.x)) and res.rel_residual > 1e-14


def test_cg_x0_warm_start(rng):
    F = _spd(rng, 50, 100.0)
    g = rng.standard_normal(50)
    xs = np.linalg.solve(F, g)
    exact = cg_solve(lambda v: F @ v, g, x0=xs)
    assert exact.converged and exact.iterations == 0
    near = cg_solve(lambda v: F @ v, g, x0=xs + 1e-6 * rng.standard_normal(50), tol=1e-12)
    cold = cg_solve(lambda v: F @ v, g, tol=1e-12)
    assert near.converged and near.iterations < cold.iterations


@pytest.mark.parametrize('neg', [-1.0, 0.0])
def test_cg_detects_indefinite_operator(rng, neg):
    lam = np.r_[np.linspace(1, 2, 9), neg]
    Q = np.linalg.qr(rng.standard_normal((10, 10)))[0]
    F = (Q * lam) @ Q.T
    res = cg_solve(lambda v: F @ v, np.ones(10))
    assert not res.converged and 'negative curvature' in res.message
    assert np.all(np.isfinite(res.x))


@pytest.mark.parametrize('noise', [-1e-15, 0.0, 1e-15])
@pytest.mark.parametrize('scale', [1.0, 2.0**-300, 2.0**300])
def test_cg_zero_curvature_is_relative_to_scale(rng, noise, scale):
    "A singular PSD operator stops at zero curvature whatever the sign of the rounding noise and the scale of F."
    lam = np.r_[np.linspace(1, 2, 9), 0.0]
    Q = np.linalg.qr(rng.standard_normal((10, 10)))[0]
    F, u = scale * (Q * lam) @ Q.T, Q[:, -1]
    res = cg_solve(lambda v: F @ v + noise * scale * u * (u @ v), np.ones(10))
    assert not res.converged and 'zero or negative curvature' in res.message, res.message
    # each accepted step has ||alpha p|| <= ||r|| / (eps * sigma) with eps = 256 u and sigma >= 1 here,
    # so ||x|| stays below ~ k ||g|| / eps (a sign test lets one step of size ||g|| / u ~ 1e16 through)
    eps = 256 * np.finfo(float).eps
    assert np.all(np.isfinite(res.x)) and np.linalg.norm(res.x) * scale < 10 * np.linalg.norm(np.ones(10)) / eps


@pytest.mark.parametrize('lam_min', [1e-6, 1e-12])
def test_cg_ill_conditioned_spd_is_not_flagged(rng, lam_min):
    "cond up to 1e12 (below 1 / (256 eps)) is solved, not reported as zero curvature."
    lam = np.r_[np.linspace(1, 2, 9), lam_min]
    Q = np.linalg.qr(rng.standard_normal((10, 10)))[0]
    F, g = (Q * lam) @ Q.T, np.ones(10)
    res = cg_solve(lambda v: F @ v, g, tol=1e-8)
    assert res.converged, res.message
    # ||x - x*|| <= ||r_true|| / lam_min, and the true residual is the recurrence's (<= tol ||g||) plus
    # rounding of order D u ||F|| ||x||: a bound from the conditioning, not from one BLAS kernel's bits
    xs = Q @ (Q.T @ g / lam)
    bound = (1e-8 * np.linalg.norm(g) + 10 * 10 * np.finfo(float).eps * 2 * np.linalg.norm(xs)) / lam_min
    assert np.linalg.norm(res.x - xs) < bound


def test_cg_non_finite_products_are_reported():
    res = cg_solve(lambda v: np.where(v != 0, np.nan, 0.0), np.ones(4))
    assert not res.converged and 'non-finite' in res.message and np.all(np.isfinite(res.x))
    res = cg_solve(lambda v: 2 * v, np.ones(4), precond=lambda r: np.full(4, np.inf))
    assert not res.converged and 'preconditioner' in res.message


def test_cg_zero_rhs():
    res = cg_solve(lambda v: v, np.zeros(3))
    assert res.converged and np.all(res.x == 0)


@pytest.mark.parametrize('kw, match', [
    (dict(fvp=np.eye(3)), '`fvp`'),
    (dict(fvp=lambda v: np.ones(2)), '`fvp`.*shape'),
    (dict(precond='jacobi'), '`precond`'),
    (dict(tol=0.0), '`tol`'),
    (dict(x0=np.ones(2)), '`x0`'),
    (dict(g=np.ones((3, 2))), '`g`'),
])
def test_cg_bad_input_names_argument(kw, match):
    args = dict(fvp=lambda v: v, g=np.ones(3)) | kw
    with pytest.raises(ValueError, match=match):
        cg_solve(**args)


# ---------------------------------------------------------------- damping rules
@pytest.mark.parametrize('ratio, direction', [(-5.0, 1), (0.0, 1), (0.2, 1), (0.25, 0), (0.5, 0), (0.75, 0),
                                              (0.8, -1), (1.0, -1), (3.0, -1), (np.nan, 1), (np.inf, 1)])
@pytest.mark.parametrize('delta', [1e-6, 1.0, 1e4])
def test_lm_damping_directions(ratio, direction, delta):
    new = lm_damping_update(delta, ratio)
    assert np.sign(new - delta) == direction
    if direction: assert np.isclose(max(new, delta) / min(new, delta), 1.5)


def test_lm_damping_clipped_and_validated():
    assert lm_damping_update(1e-12, 1.0) == 1e-12 and lm_damping_update(1e12, -1.0) == 1e12
    for kw, name in ((dict(delta=0.0), '`delta`'), (dict(delta=-1.0), '`delta`'), (dict(factor=1.0), '`factor`'),
                     (dict(rho_ratio='x'), '`rho_ratio`'), (dict(low=0.8, high=0.2), '`low`')):
        with pytest.raises(ValueError, match=name):
            lm_damping_update(**(dict(delta=1.0, rho_ratio=0.5) | kw))


def test_reduction_ratio_is_one_on_quadratic(rng):
    F = _spd(rng, 8)
    b = rng.standard_normal(8)
    h = lambda t: 0.5 * t @ F @ t - b @ t
    theta = rng.standard_normal(8)
    grad = F @ theta - b
    s = -solve_spd(F, grad, damping=0.3)
    assert np.isclose(reduction_ratio(h(theta), h(theta + s), grad, s, F @ s), 1.0, rtol=1e-10)
    assert np.isnan(reduction_ratio(1.0, np.inf, grad, s, F @ s))


# ---------------------------------------------------------------- diagonal and K-FAC
def test_diag_solve(rng):
    d = rng.uniform(0.1, 5, 12)
    g = rng.standard_normal((12, 3))
    assert rel_error(diag_solve(d, g, 0.5), np.linalg.solve(np.diag(d + 0.5), g)) < 1e-14
    with pytest.raises(ValueError, match='`F_diag`'):
        diag_solve(np.r_[d[:-1], -1.0], g[:, 0])
    with pytest.raises(ValueError, match='`g`.*`F_diag`'):
        diag_solve(d, np.ones(5))


@pytest.mark.parametrize('d_out, d_in', [(1, 1), (3, 5), (7, 4)])
@pytest.mark.parametrize('damping', [0.0, 0.01, 2.0])
def test_kfac_exact_kronecker(rng, d_out, d_in, damping):
    A, G = _spd(rng, d_in), _spd(rng, d_out)
    gW = rng.standard_normal((d_out, d_in))
    pi = kfac_pi(A, G) if damping else 1.0
    Fk = np.kron(A + pi * np.sqrt(damping) * np.eye(d_in), G + np.sqrt(damping) / pi * np.eye(d_out))
    x = kfac_solve(A, G, gW, damping)
    assert x.shape == gW.shape
    assert rel_error(_vec(x), np.linalg.solve(Fk, _vec(gW))) < 1e-10
    if damping == 0:
        assert rel_error(_vec(x), solve_spd(np.kron(A, G), _vec(gW))) < 1e-10


def test_kfac_batched_rhs(rng):
    A, G = _spd(rng, 4), _spd(rng, 3)
    gs = rng.standard_normal((5, 3, 4))
    out = kfac_solve(A, G, gs, 0.1)
    assert out.shape == gs.shape
    assert all(np.allclose(out[i], kfac_solve(A, G, gs[i], 0.1)) for i in range(5))


def test_kfac_errors_name_argument(rng):
    A, G = _spd(rng, 4), _spd(rng, 3)
    with pytest.raises(ValueError, match='`grad_W`'):
        kfac_solve(A, G, np.ones((4, 3)))
    with pytest.raises(ValueError, match='`A`.*not positive definite'):
        kfac_solve(A - 20 * np.eye(4), G, np.ones((3, 4)))
    with pytest.raises(ValueError, match='`G`'):
        kfac_solve(A, np.ones((3, 2)), np.ones((3, 4)))


def test_layer_problem_kfac_beats_diag():
    lay = softmax_layer_problem(6, 10, np.random.default_rng(3))
    xs = solve_spd(lay.dense(), lay.g)
    A, G = lay.factors()
    v = np.random.default_rng(4).standard_normal(lay.dim)
    assert np.allclose(lay.fvp(v), lay.dense() @ v)
    assert angle_deg(_vec(kfac_solve(A, G, lay.grad, lay.prior_prec)), xs) < angle_deg(diag_solve(lay.diag(), lay.g), xs)


def test_glm_problem_condition_number():
    pb = glm_fisher_problem(120, np.random.default_rng(2), cond=1e5)
    ev = np.linalg.eigvalsh(pb.dense())
    assert np.isclose(ev[-1] / ev[0], 1e5, rtol=1e-6)
    with pytest.raises(ValueError, match='`cond`'):
        glm_fisher_problem(30, np.random.default_rng(2), cond=1e30)


@pytest.mark.slow
def test_cg_acceptance_d2000():
    "Jacobi-PCG with Fisher-vector products reaches rel. error < 1e-8 at D = 2000, cond 1e6."
    pb = glm_fisher_problem(2000, np.random.default_rng([0, 2000]), cond=1e6)
    F = pb.dense()
    xs = solve_spd(F, pb.g)
    xs = xs + solve_spd(F, pb.g - F @ xs)
    res = cg_solve(pb.fvp, pb.g, precond=jacobi_preconditioner(pb.diag()), tol=1e-12)
    assert res.converged and rel_error(res.x, xs) < 1e-8


def _singular2(seed, c):
    "Rotated diag(10, 0) and g = Q c (c[0]: range component, c[1]: null-space component)."
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((2, 2)))[0]
    return (Q * [10.0, 0.0]) @ Q.T, Q @ np.asarray(c)


def test_cg_scale_from_product_norms_catches_nearly_null_rhs():
    "Found by hypothesis: with the largest Rayleigh quotient as the scale, this took a 1e16 step and 'converged'."
    F, g = _singular2(2211, [0.04, -4.5])
    res = cg_solve(lambda v: F @ v, g)
    assert not res.converged and 'zero or negative curvature' in res.message and res.iterations == 1


@pytest.mark.parametrize('seed', [16, 17, 27, 0, 1])
def test_cg_never_claims_convergence_with_true_residual_worse_than_start(seed):
    "Huge first steps: stopped by curvature or by the one-product check of g - Fx, whichever the rounding triggers."
    F, g = _singular2(seed, [9.2e-5, 0.415])
    res = cg_solve(lambda v: F @ v, g)
    assert not res.converged and np.all(np.isfinite(res.x))
    assert res.message.startswith(('zero or negative curvature', 'the recurrence residual reached tol'))
