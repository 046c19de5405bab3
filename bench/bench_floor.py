"""Per-iteration cost of Gaussian NGVI for logistic regression with exact (quadrature) expectations, broken into
its parts, against the unavoidable dense kernels (the floor) timed in the same process, as N and D grow.

Full covariance, one iteration (state: mean m, lower Cholesky factor L of the precision S):
  factor     Linv = L^{-1} (triangular inverse, D^3/3)            -- solves
  sd         B = X Linv^T (GEMM, 2 N D^2), sd_i = ||B_i||            -- expectations
  mean       mu = X m (GEMV)                                         -- expectations
  quadrature (E f, E f', E f'') per row, ngvi_lit.quadrature        -- expectations
  gradient   g = S0 (m - m0) - X^T E f' (GEMV)                       -- curvature/gradient accumulation
  curvature  H = S0 + X^T W X, W = -E f'' >= 0 (SYRK on W^1/2 X, N D^2)
  cholesky   L' = chol((1-rho) S + rho H) (D^3/3)
  solve      m' = m - rho S'^{-1} g (two triangular solves, D^2)
Floor = one GEMM (N x D)(D x D) + one SYRK (N x D) + one Cholesky (D x D), same shapes, same process.
The `library` column times one whole iteration through ngvi_lit's own API (models/updates) when it exists.

Diagonal family (q = N(m, diag v)): mu = X m, var = X^2 v, quadrature, g = X^T E f', h = (X^2)^T W; the floor is
the four matrix-vector passes (X^2 is data, precomputed once).

Usage: python bench/bench_floor.py [--quick]   (writes bench/results/floor.json and floor_*.png)
"""
from __future__ import annotations
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (sets BLAS threads before numpy)
import numpy as np  # noqa: E402
import scipy.linalg as sla  # noqa: E402
from scipy.linalg import blas, lapack  # noqa: E402
from ngvi_lit.quadrature import glm_likelihood  # noqa: E402

LIK = glm_likelihood('logistic')
FULL_PARTS = ('factor', 'sd', 'mean', 'quadrature', 'gradient', 'curvature', 'cholesky', 'solve')
DIAG_PARTS = ('mean', 'var', 'quadrature', 'gradient', 'curvature', 'update')
GROUPS = {'expectations': ('sd', 'mean', 'quadrature'), 'curvature': ('gradient', 'curvature'),
          'cholesky': ('cholesky',), 'solves': ('factor', 'solve')}

SIZES = dict(
    full=dict(N_for_D=10_000, D=(10, 30, 100, 300, 500, 1000, 2000), D_for_N=100, N=(1_000, 10_000, 100_000, 1_000_000)),
    full_quick=dict(N_for_D=1_000, D=(10, 30, 100, 200), D_for_N=20, N=(1_000, 3_000, 10_000)),
    diag=dict(N_for_D=1_000, D=(10, 100, 1_000, 10_000, 100_000), D_for_N=100, N=(1_000, 10_000, 100_000, 1_000_000)),
    diag_quick=dict(N_for_D=200, D=(10, 100, 1_000, 10_000), D_for_N=20, N=(1_000, 10_000)),
)


def make_problem(N: int, D: int, seed: int = common.SEED):
    "Synthetic logistic data with linear predictors of order 1, and a plausible current q."
    rng = np.random.default_rng([seed, N, D])
    X = rng.standard_normal((N, D))
    z = rng.standard_normal(D) / np.sqrt(D)
    y = (rng.random(N) < 1 / (1 + np.exp(-X @ z))).astype(float)
    m = 0.9 * z
    return X, y, m


def _full_state(X, m):
    D = X.shape[1]
    S = np.eye(D) + blas.dsyrk(0.25, X, trans=1, lower=1)   # lower triangle of I + X^T X / 4
    S = np.tril(S) + np.tril(S, -1).T
    return m, S, np.linalg.cholesky(S)


def full_iteration(X, y, m, S, L, rho=1.0, s0=1.0):
    "One full-covariance NGVI iteration, timed part by part. Returns (seconds per part, new state)."
    t = {}; c = time.perf_counter
    t0 = c(); Linv, info = lapack.dtrtri(L, lower=1); t['factor'] = c() - t0
    t0 = c(); B = X @ Linv.T; sd = np.sqrt(np.einsum('ij,ij->i', B, B)); t['sd'] = c() - t0
    del B
    t0 = c(); mu = X @ m; t['mean'] = c() - t0
    t0 = c(); _, e1, e2 = LIK.expect(y, mu, sd); t['quadrature'] = c() - t0
    t0 = c(); g = s0 * m - X.T @ e1; t['gradient'] = c() - t0
    t0 = c()
    A = X * np.sqrt(-e2)[:, None]
    H = blas.dsyrk(1.0, A, trans=1, lower=1); del A
    H[np.diag_indices_from(H)] += s0
    t['curvature'] = c() - t0
    t0 = c()
    S_new = (1 - rho) * S + rho * H             # only the lower triangle is meaningful
    L_new, info = lapack.dpotrf(S_new, lower=1, clean=1)
    if info: raise np.linalg.LinAlgError(f'Cholesky failed (info={info})')
    t['cholesky'] = c() - t0
    t0 = c(); m_new = m - rho * sla.cho_solve((L_new, True), g, check_finite=False); t['solve'] = c() - t0
    return t, (m_new, S_new, L_new)


def full_floor(X, V, A, S) -> dict:
    "The unavoidable dense kernels: GEMM X V (N x D x D), SYRK A^T A (N x D), Cholesky of S (D x D)."
    t = {}; c = time.perf_counter
    t0 = c(); X @ V; t['gemm'] = c() - t0
    t0 = c(); blas.dsyrk(1.0, A, trans=1, lower=1); t['syrk'] = c() - t0
    t0 = c(); lapack.dpotrf(S, lower=1, clean=0); t['cholesky'] = c() - t0
    return t


def _library_iteration():
    """A function (X, y, q, rho) -> q' running one iteration through ngvi_lit's own API, and its description;
    or (None, reason) when the library does not (yet) provide a logistic model with exact expectations."""
    try:
        from ngvi_lit import models, updates
        from ngvi_lit.families import MvNormal
    except ImportError as e:
        return None, f'ngvi_lit.models/updates not importable ({e})'
    cls = next((getattr(models, n) for n in ('LogisticRegression', 'Logistic', 'BayesLogistic')
                if hasattr(models, n)), None)
    if cls is None or not hasattr(cls, 'expected_grad_hess') or not hasattr(updates, 'ngvi_gaussian_step'):
        return None, 'ngvi_lit.models has no logistic model with expected_grad_hess (yet)'

    def make(X, y):
        D = X.shape[1]
        prior = MvNormal.from_precision(np.zeros(D), np.eye(D))
        try: model = cls(X, y, prior=prior)
        except TypeError: model = cls(X, y, prior)
        def it(q, rho=1.0):
            g, H = model.expected_grad_hess(q)
            return updates.ngvi_gaussian_step(q, g, H, rho)
        return it
    return make, f'ngvi_lit.models.{cls.__name__}.expected_grad_hess + ngvi_lit.updates.ngvi_gaussian_step'


def bench_full(N, D, repeats, lib_make=None, measure_memory=True):
    X, y, m = make_problem(N, D)
    state = _full_state(X, m)
    parts, floors, totals, ftot = {k: [] for k in FULL_PARTS}, {k: [] for k in ('gemm', 'syrk', 'cholesky')}, [], []
    full_iteration(X, y, *state)   # warm-up
    V = np.linalg.inv(state[2]).T.copy(); A = X * 0.5; S = state[1]
    for _ in range(repeats):       # interleave iteration and floor so that both see the same machine load
        t, _ = full_iteration(X, y, *state)
        for k, v in t.items(): parts[k].append(v)
        totals.append(sum(t.values()))
        f = full_floor(X, V, A, S)
        for k, v in f.items(): floors[k].append(v)
        ftot.append(sum(f.values()))
    row = dict(family='full', N=N, D=D, repeats=repeats, total=common.spread(totals), floor=common.spread(ftot),
               parts={k: float(np.median(v)) for k, v in parts.items()},
               floor_parts={k: float(np.median(v)) for k, v in floors.items()})
    row['ratio'] = row['total']['median'] / row['floor']['median']
    row['groups'] = {g: sum(row['parts'][p] for p in ps) for g, ps in GROUPS.items()}
    row['dominant'] = max(row['parts'], key=row['parts'].get)
    if lib_make is not None:
        try:
            from ngvi_lit.families import MvNormal
            it = lib_make(X, y)
            q = MvNormal.from_precision(state[0], state[1])
            it(q)
            lt = [common.time_fn(lambda: it(q), repeats=1, warmup=0)['median'] for _ in range(repeats)]
            row['library'] = common.spread(lt)
            row['library_ratio'] = row['library']['median'] / row['floor']['median']
        except Exception as e:
            row['library_error'] = f'{type(e).__name__}: {e}'
    if measure_memory:
        row['peak_bytes'] = common.peak_bytes(lambda: full_iteration(X, y, *state))
        row['data_bytes'] = X.nbytes
    return row


def diag_iteration(X, X2, y, m, v, rho=1.0, s0=1.0):
    t = {}; c = time.perf_counter
    t0 = c(); mu = X @ m; t['mean'] = c() - t0
    t0 = c(); sd = np.sqrt(X2 @ v); t['var'] = c() - t0
    t0 = c(); _, e1, e2 = LIK.expect(y, mu, sd); t['quadrature'] = c() - t0
    t0 = c(); g = s0 * m - X.T @ e1; t['gradient'] = c() - t0
    t0 = c(); h = s0 - X2.T @ e2; t['curvature'] = c() - t0
    t0 = c(); s = (1 - rho) / v + rho * h; m_new = m - rho * g / s; v_new = 1 / s; t['update'] = c() - t0
    return t, (m_new, v_new)


def diag_floor(X, X2, a, b) -> dict:
    t = {}; c = time.perf_counter
    t0 = c(); X @ a; X2 @ a; t['gemv'] = c() - t0
    t0 = c(); X.T @ b; X2.T @ b; t['gemv_t'] = c() - t0
    return t


def bench_diag(N, D, repeats, measure_memory=True):
    X, y, m = make_problem(N, D)
    X2 = X * X
    v = np.full(D, 1.0 / (1 + N / 4))
    parts, totals, ftot = {k: [] for k in DIAG_PARTS}, [], []
    a, b = np.ones(D), np.ones(N)
    diag_iteration(X, X2, y, m, v)
    for _ in range(repeats):
        t, _ = diag_iteration(X, X2, y, m, v)
        for k, val in t.items(): parts[k].append(val)
        totals.append(sum(t.values()))
        ftot.append(sum(diag_floor(X, X2, a, b).values()))
    row = dict(family='diag', N=N, D=D, repeats=repeats, total=common.spread(totals), floor=common.spread(ftot),
               parts={k: float(np.median(val)) for k, val in parts.items()})
    row['ratio'] = row['total']['median'] / row['floor']['median']
    row['dominant'] = max(row['parts'], key=row['parts'].get)
    if measure_memory:
        row['peak_bytes'] = common.peak_bytes(lambda: diag_iteration(X, X2, y, m, v))
        row['data_bytes'] = X.nbytes + X2.nbytes
    return row


def _slopes(rows, axis):
    out = {}
    xs = [r[axis] for r in rows]
    out['total'] = common.loglog_slope(xs, [r['total']['median'] for r in rows])
    out['floor'] = common.loglog_slope(xs, [r['floor']['median'] for r in rows])
    out['peak_bytes'] = common.loglog_slope(xs, [r.get('peak_bytes', 0) for r in rows])
    for p in rows[0]['parts']: out[p] = common.loglog_slope(xs, [r['parts'][p] for r in rows])
    return out


def plot(res, out_dir=common.RESULTS_DIR):
    "Log-log plots of time and peak memory against D and N, one figure per family."
    paths = []
    for fam in ('full', 'diag'):
        sweeps = res[fam]
        fig, axes = common.new_figure(2, 2, figsize=(10, 7.5))
        for j, (axis, key) in enumerate((('D', 'by_D'), ('N', 'by_N'))):
            rows = sweeps[key]
            if not rows: continue
            xs = [r[axis] for r in rows]
            sl = sweeps['slopes_' + key]
            ax = axes[0, j]
            ax.loglog(xs, [r['total']['median'] for r in rows], 'k-o', lw=2, label=f"iteration (slope {sl['total']:.2f})")
            ax.fill_between(xs, [r['total']['min'] for r in rows], [r['total']['max'] for r in rows], color='k', alpha=.15)
            ax.loglog(xs, [r['floor']['median'] for r in rows], 'r--s', lw=2, label=f"floor kernels (slope {sl['floor']:.2f})")
            if any('library' in r for r in rows):
                lr = [r for r in rows if 'library' in r]
                ax.loglog([r[axis] for r in lr], [r['library']['median'] for r in lr], 'b-^', label='library API iteration')
            for p in rows[0]['parts']:
                ax.loglog(xs, [max(r['parts'][p], 1e-7) for r in rows], ':', marker='.', label=p)
            fixed = rows[0]['N' if axis == 'D' else 'D']
            ax.set(xlabel=axis, ylabel='seconds per iteration',
                   title=f"{fam}: time vs {axis} ({'N' if axis == 'D' else 'D'} = {fixed:,})")
            ax.legend(fontsize=7, ncol=2); ax.grid(True, which='both', alpha=.3)
            ax = axes[1, j]
            ax.loglog(xs, [r['peak_bytes'] / 2**20 for r in rows], 'g-o', label=f"peak extra memory (slope {sl['peak_bytes']:.2f})")
            ax.loglog(xs, [r['data_bytes'] / 2**20 for r in rows], 'k:', label='data X (and X^2)')
            ax.set(xlabel=axis, ylabel='MiB', title=f'{fam}: peak memory of one iteration vs {axis}')
            ax.legend(fontsize=8); ax.grid(True, which='both', alpha=.3)
        fig.tight_layout()
        paths.append(str(common.save_figure(fig, f'floor_{fam}', out_dir)))
    return paths


def run(quick: bool = False) -> dict:
    "Run both sweeps for both families; return a JSON-serialisable dict."
    t_start = time.perf_counter()
    lib_make, lib_desc = _library_iteration()
    res = dict(benchmark='floor', quick=quick, seed=common.SEED, implementation=dict(
        parts='bench/bench_floor.py full_iteration / diag_iteration: ngvi_lit.quadrature.glm_likelihood("logistic")'
              ' for the expectations, numpy/scipy BLAS-LAPACK calls for the rest',
        library=lib_desc if lib_make else f'not timed: {lib_desc}'))
    for fam, fn in (('full', bench_full), ('diag', bench_diag)):
        sz = SIZES[fam + ('_quick' if quick else '')]
        reps = 3 if quick else 5
        kw = dict(lib_make=lib_make) if fam == 'full' else {}
        by_D = [fn(sz['N_for_D'], D, reps, **kw) for D in sz['D']]
        by_N = [fn(N, sz['D_for_N'], reps if N < 500_000 else max(3, reps - 2), **kw) for N in sz['N']]
        res[fam] = dict(N_for_D=sz['N_for_D'], D_for_N=sz['D_for_N'], by_D=by_D, by_N=by_N,
                        slopes_by_D=_slopes(by_D, 'D'), slopes_by_N=_slopes(by_N, 'N'))
    big = [r for r in res['full']['by_D'] + res['full']['by_N'] if r['D'] >= 500]
    res['acceptance'] = dict(
        target='full-covariance iteration within 2x of the dense-kernel floor for D >= 500',
        rows=[dict(N=r['N'], D=r['D'], ratio=r['ratio'], library_ratio=r.get('library_ratio')) for r in big],
        max_ratio=max((r['ratio'] for r in big), default=None),
        meets_target=bool(big) and all(r['ratio'] <= 2 for r in big))
    res['figures'] = plot(res)
    res['wall_seconds'] = time.perf_counter() - t_start
    return res


def summary(res) -> str:
    lines = []
    for fam in ('full', 'diag'):
        lines.append(f'{fam}: {"N":>8} {"D":>7} {"iter s":>9} {"floor s":>9} {"ratio":>6} {"lib/floor":>9}  dominant')
        for r in res[fam]['by_D'] + res[fam]['by_N']:
            lr = r.get('library_ratio')
            lines.append(f'      {r["N"]:>8} {r["D"]:>7} {r["total"]["median"]:9.2e} {r["floor"]["median"]:9.2e} '
                         f'{r["ratio"]:6.2f} {"" if lr is None else f"{lr:9.2f}":>9}  {r["dominant"]}')
    acc = res['acceptance']
    lines.append(f'acceptance (D >= 500): max ratio {acc["max_ratio"]}, meets target: {acc["meets_target"]}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    return common.script_main('floor', run, summary, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
