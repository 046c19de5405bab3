"""Soak test of the default `fit`: 1,000 generated GLM problems (logistic, probit, Poisson) that span the ranges a user
can throw at it, run with `fit(model, rng=np.random.default_rng(seed))` and nothing else. Counts what must never
happen (an invalid q, an empty message, 'failed' on a well-posed problem) and how long the rest takes.

Problem `seed` (0..999) is generated from `np.random.default_rng(seed)` alone, so any case re-runs by seed:
    from bench_soak import make_problem; p = make_problem(17); fit(p['model'], rng=np.random.default_rng(17))
  kind       seed % 3: logistic, probit, Poisson
  D          log-uniform integer in [1, 50]
  N          log-uniform integer in [20, 3000]
  scales     per column, log-uniform in [1e-3, 1e3] (six orders of magnitude); X = standard normal * scales,
             with an intercept column (constant, times its scale) in 30% of problems
  prior      N(0, sd^2 I), sd log-uniform in [0.1, 1e4]
  labels     logistic/probit: 20% separable (y = 1 where one feature exceeds a threshold), else drawn from the link at
             a true z with linear predictors of order 1; Poisson: counts at a true z with eta in [-3, 3]
  Poisson    prior sd capped so that the prior sd s of every linear predictor x_i^T z is at most a band's cap:
             60% 'tame' (s <= 3: E exp(eta) <= e^4.5), 15% 'extreme' (s <= 10..35: E exp(eta) = e^(s^2/2) up to
             1e266, finite but huge), 25% 'raw' (no cap: usually E exp overflows, ELBO = -inf at the prior, where
             the default fit starts)
Well-posed: the ELBO, expected gradient and curvature at the prior (the default start) are all finite.
Invalid q: non-finite mean or covariance, or a covariance (precision) that is not positive definite.

Usage: python bench/bench_soak.py [--quick]   (writes bench/results/soak.json); --quick runs 60 problems.
"""
from __future__ import annotations
import os, sys, time, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (sets BLAS threads before numpy)
import numpy as np  # noqa: E402
from scipy import special  # noqa: E402

N_PROBLEMS, N_QUICK = 1000, 60
KINDS = ('logistic', 'probit', 'poisson')
SERIAL_BUDGET = 300.   # seconds: above this (estimated from the first problems) use 2 worker processes


def _loguniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def make_problem(seed: int) -> dict:
    "The GLM problem number `seed` and what describes it (a pure function of `seed`)."
    from ngvi_lit import models
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % 3]
    D = int(np.clip(np.round(_loguniform(rng, 1, 50)), 1, 50))
    N = int(np.round(_loguniform(rng, 20, 3000)))
    scales = _loguniform(rng, 1e-3, 1e3, D)
    X = rng.standard_normal((N, D))
    intercept = bool(rng.random() < 0.3)
    if intercept: X[:, 0] = 1.0
    X *= scales
    sd = float(_loguniform(rng, 0.1, 1e4))
    sep, poisson_band = False, None
    if kind == 'poisson':
        z = rng.standard_normal(D) / (scales * np.sqrt(D))
        eta = np.clip(X @ z, -3, 3)
        y = rng.poisson(np.exp(eta)).astype(float)
        u = rng.random()
        poisson_band = 'tame' if u < 0.6 else 'extreme' if u < 0.75 else 'raw'
        cap = dict(tame=3., extreme=rng.uniform(10, 35), raw=np.inf)[poisson_band]
        sd = min(sd, cap / np.sqrt((X * X).sum(1).max()))
        model = models.PoissonRegression(X, y, sd)
    else:
        sep = bool(rng.random() < 0.2)
        if sep:
            j = int(rng.integers(D))
            y = (X[:, j] > np.quantile(X[:, j], rng.uniform(0.2, 0.8))).astype(float)
        else:
            z = rng.standard_normal(D) / (scales * np.sqrt(D))
            eta = X @ z
            p = special.expit(eta) if kind == 'logistic' else special.ndtr(eta)
            y = (rng.random(N) < p).astype(float)
        cls = models.LogisticRegression if kind == 'logistic' else models.ProbitRegression
        model = cls(X, y, sd)
    desc = dict(seed=seed, kind=kind, N=N, D=D, scale_min=float(scales.min()), scale_max=float(scales.max()),
                intercept=intercept, prior_sd=sd, separable=sep, poisson_band=poisson_band)
    return dict(model=model, desc=desc)


def _at_prior(model) -> dict:
    """Is the problem well-posed at the prior (where the default fit starts): ELBO, expected gradient and curvature
    finite? And is it numerically tame there: the expected curvature of the negative log joint positive definite in
    floating point (its Cholesky succeeds; a Poisson curvature of 1e150 rounds to an indefinite matrix)?"""
    out = dict(well_posed=False, curvature_pd_at_prior=False, elbo_at_prior=None, ill_posed_reason='')
    try:
        with warnings.catch_warnings(), np.errstate(all='ignore'):
            warnings.simplefilter('ignore')
            ex = model.expectations(model.prior)
    except Exception as e:
        out['ill_posed_reason'] = f'expectations at the prior raised {type(e).__name__}: {e}'; return out
    bad = [n for n, v in (('elbo', ex.elbo), ('grad', ex.grad), ('hess', ex.hess)) if not np.all(np.isfinite(v))]
    out['elbo_at_prior'] = float(ex.elbo)
    if bad: out['ill_posed_reason'] = 'non-finite at the prior: ' + ', '.join(bad); return out
    out['well_posed'] = True
    try: np.linalg.cholesky((ex.hess + ex.hess.T) / 2); out['curvature_pd_at_prior'] = True
    except np.linalg.LinAlgError: pass
    return out


def _q_valid(q) -> tuple[bool, str]:
    "Finite mean and covariance, positive-definite covariance."
    try:
        m, C = np.asarray(q.mean, float), np.asarray(q.cov, float)
    except Exception as e:
        return False, f'q.mean/q.cov raised {type(e).__name__}: {e}'
    if not np.all(np.isfinite(m)): return False, 'non-finite mean'
    if not np.all(np.isfinite(C)): return False, 'non-finite covariance'
    try: np.linalg.cholesky((C + C.T) / 2)
    except np.linalg.LinAlgError: return False, 'covariance not positive definite'
    return True, ''


def run_one(seed: int) -> dict:
    "Generate problem `seed`, fit it with the defaults, and describe the outcome."
    from ngvi_lit.fit import fit
    p = make_problem(seed)
    row = dict(p['desc'])
    row.update(_at_prior(p['model']))
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            res = fit(p['model'], rng=np.random.default_rng(seed))
        row['seconds'] = time.perf_counter() - t0
        row.update(status=res.status, message=res.message, nit=int(res.nit), wall_time=float(res.wall_time),
                   elbo=float(res.elbo) if res.nit else None, n_warnings=len(w))
        row['q_valid'], row['q_problem'] = _q_valid(res.q)
    except Exception as e:   # fit must not raise on a valid model: count it as its own status
        row['seconds'] = time.perf_counter() - t0
        row.update(status='exception', message=f'{type(e).__name__}: {e}', nit=None, wall_time=None, elbo=None,
                   n_warnings=0, q_valid=False, q_problem='fit raised')
    return row


def _quantiles(xs) -> dict | None:
    a = np.asarray([x for x in xs if x is not None], float)
    if a.size == 0: return None
    q = np.percentile(a, [50, 90, 99])
    return dict(n=int(a.size), p50=float(q[0]), p90=float(q[1]), p99=float(q[2]), max=float(a.max()))


_BRIEF = ('seed', 'kind', 'N', 'D', 'prior_sd', 'separable', 'well_posed', 'q_valid', 'status', 'message', 'nit', 'seconds')


def _group(r) -> str:
    "logistic / probit (with '-separable'), poisson-tame / -extreme / -raw."
    if r['kind'] == 'poisson': return f"poisson-{r['poisson_band']}"
    return r['kind'] + ('-separable' if r['separable'] else '')


def _badness(r) -> tuple:
    "Sort key of the worst cases: invalid q, then 'failed' on a well-posed problem, exception, failed, stalled, max_iter; then slow."
    order = {'exception': 1, 'failed': 2, 'stalled': 3, 'max_iter': 4, 'callback': 5, 'converged': 6}
    return (r['q_valid'], not (r['status'] == 'failed' and r['well_posed']), bool(r['message']),
            order.get(r['status'], 0), -r['seconds'])


def run(quick: bool = False) -> dict:
    "Fit every problem; return counts, quantiles and the worst cases (JSON-serialisable)."
    t_start = time.perf_counter()
    n = N_QUICK if quick else N_PROBLEMS
    seeds = list(range(n))
    probe = min(20, n)
    rows = [run_one(s) for s in seeds[:probe]]
    est = (time.perf_counter() - t_start) / probe * n
    workers = 1
    if est > SERIAL_BUDGET and (os.cpu_count() or 1) >= 2:
        import multiprocessing as mp
        workers = 2
        with mp.get_context('fork').Pool(workers) as pool:
            rows += pool.map(run_one, seeds[probe:], chunksize=4)
    else:
        rows += [run_one(s) for s in seeds[probe:]]
    rows.sort(key=lambda r: r['seed'])

    statuses = sorted({r['status'] for r in rows})
    status_counts = {s: sum(r['status'] == s for r in rows) for s in statuses}
    groups = sorted({_group(r) for r in rows})
    by_group = {g: {s: sum(r['status'] == s and _group(r) == g for r in rows) for s in statuses} for g in groups}
    wp = [r for r in rows if r['well_posed']]
    conv = [r for r in rows if r['status'] == 'converged']
    invalid = [r for r in rows if not r['q_valid']]
    failed_wp = [r for r in wp if r['status'] in ('failed', 'exception')]
    failed_tame = [r for r in failed_wp if r['curvature_pd_at_prior']]
    empty = [r for r in rows if not (r['status'] and r['message'] and str(r['message']).strip())]
    worst = sorted(rows, key=_badness)[:10]
    res = dict(benchmark='soak', quick=quick, n_problems=n, workers=workers, estimated_serial_seconds=est,
               fit_call='ngvi_lit.fit.fit(model, rng=np.random.default_rng(seed)) (all defaults: method ngvi, max_iter 100)',
               generator=__doc__.split('\n\n')[1],
               well_posed_definition='ELBO, expected gradient and expected curvature at the prior (the default start) all finite',
               invalid_definition='q.mean or q.cov non-finite, or q.cov not positive definite (Cholesky fails)',
               tame_definition='well-posed, and the expected curvature at the prior is positive definite in floating point',
               counts=dict(invalid_q=len(invalid), failed_well_posed=len(failed_wp), failed_tame=len(failed_tame),
                           tame=sum(r['curvature_pd_at_prior'] for r in rows),
                           failed_ill_posed=sum(r['status'] == 'failed' and not r['well_posed'] for r in rows),
                           exceptions=status_counts.get('exception', 0), empty_message=len(empty),
                           well_posed=len(wp), ill_posed=n - len(wp), separable=sum(r['separable'] for r in rows),
                           poisson_bands={b: sum(r['poisson_band'] == b for r in rows) for b in ('tame', 'extreme', 'raw')}, with_warnings=sum(r['n_warnings'] > 0 for r in rows)),
               status_counts=status_counts, status_by_group=by_group,
               converged_iterations=_quantiles([r['nit'] for r in conv]),
               converged_seconds=_quantiles([r['seconds'] for r in conv]),
               all_seconds=_quantiles([r['seconds'] for r in rows]),
               invalid_seeds=[r['seed'] for r in invalid], failed_well_posed_seeds=[r['seed'] for r in failed_wp],
               failed_tame_seeds=[r['seed'] for r in failed_tame],
               failed_well_posed_by_group={g: sum(_group(r) == g for r in failed_wp) for g in groups},
               empty_message_seeds=[r['seed'] for r in empty],
               worst=[{k: r[k] for k in _BRIEF} for r in worst],
               slowest=[{k: r[k] for k in _BRIEF} for r in sorted(rows, key=lambda r: -r['seconds'])[:5]],
               rows=rows)
    res['acceptance'] = dict(target='0 invalid q, 0 failed on well-posed problems, 0 empty messages',
                             meets_target=not invalid and not failed_wp and not empty)
    res['wall_seconds'] = time.perf_counter() - t_start
    return res


def _fmt_q(d, unit=''):
    if d is None: return 'n/a'
    f = (lambda x: f'{x:.0f}') if unit == 'it' else (lambda x: f'{x:.3g}')
    return f"p50 {f(d['p50'])}  p90 {f(d['p90'])}  p99 {f(d['p99'])}  max {f(d['max'])}  (n={d['n']})"


def summary(res) -> str:
    c = res['counts']
    L = [f"soak: {res['n_problems']} problems, {res['workers']} worker(s), {res['wall_seconds']:.1f} s",
         f"  invalid q             {c['invalid_q']:>5}   (target 0) {res['invalid_seeds'][:10]}",
         f"  failed, well-posed    {c['failed_well_posed']:>5}   (of {c['well_posed']}; target 0; well-posed = {res['well_posed_definition']})",
         f"                                seeds {res['failed_well_posed_seeds'][:12]}{' ...' if len(res['failed_well_posed_seeds']) > 12 else ''}",
         '                                by group: ' + ', '.join(f'{g} {v}' for g, v in res['failed_well_posed_by_group'].items() if v),
         f"  failed, tame          {c['failed_tame']:>5}   (of {c['tame']}; tame = {res['tame_definition']}) {res['failed_tame_seeds'][:10]}",
         f"  failed, ill-posed     {c['failed_ill_posed']:>5}   (of {c['ill_posed']} ill-posed)",
         f"  empty status/message  {c['empty_message']:>5}   (target 0)",
         f"  exceptions from fit   {c['exceptions']:>5}",
         '  status counts         ' + ', '.join(f'{k} {v}' for k, v in res['status_counts'].items()),
         *[f'    {k:<18}  ' + ', '.join(f'{s} {v}' for s, v in d.items() if v) for k, d in res['status_by_group'].items()],
         f"  converged: iterations {_fmt_q(res['converged_iterations'], 'it')}",
         f"  converged: seconds    {_fmt_q(res['converged_seconds'])}",
         f"  all runs:  seconds    {_fmt_q(res['all_seconds'])}",
         '  worst 10:',
         f"    {'seed':>4} {'kind':<8} {'N':>5} {'D':>3} {'prior sd':>8} sep wp {'status':<9} {'nit':>4} {'s':>6}  message"]
    for r in res['worst'] + [None] + res['slowest']:
        if r is None: L.append('  slowest 5:'); continue
        msg = str(r['message']); msg = msg if len(msg) <= 150 else msg[:147] + '...'
        L.append(f"    {r['seed']:>4} {r['kind']:<8} {r['N']:>5} {r['D']:>3} {r['prior_sd']:8.2g} {'y' if r['separable'] else '-':>3} "
                 f"{'y' if r['well_posed'] else 'n':>2} {r['status']:<9} {r['nit'] if r['nit'] is not None else '-':>4} "
                 f"{r['seconds']:6.2f}  {msg}")
    L.append(f"  acceptance: {res['acceptance']['target']}: {res['acceptance']['meets_target']}")
    return '\n'.join(L)


def main(argv=None) -> int:
    return common.script_main('soak', run, summary, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
