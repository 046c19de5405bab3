"""Benchmark of the Fisher solvers in `ngvi_lit.solvers`: accuracy (angle, relative error to the exact
F^{-1} g) against cost (median wall-clock seconds) as D grows.

Usage: python bench/bench_solvers.py [--quick]
Writes bench/results/solvers.json. A bench runner can `import bench_solvers` and call `run(quick)`.
"""
from __future__ import annotations
import argparse, json, os, platform, sys, time
from pathlib import Path

# Time on one BLAS thread unless the caller chose otherwise: on a shared machine multithreaded BLAS
# timings swing by 10x between runs. (Only effective if numpy is not yet imported.)
for _var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import numpy as np

from ngvi_lit.solvers import compare_solvers, format_table
from ngvi_lit.families import MvNormal
from ngvi_lit.updates import ngvi_diag_step

FULL_DIMS, QUICK_DIMS = (50, 200, 500, 1000, 2000), (50, 200, 500)


def _acceptance(rows: list[dict], D: int) -> dict:
    "CG (Jacobi, matrix-free) vs dense Cholesky at the largest size, from the same run."
    get = {r['method']: r for r in rows if r['problem'] == 'glm' and r['D'] == D}
    cg = get['cg-tol']
    return dict(D=D, cond=1e6, preconditioner='jacobi', cg_rel_error=cg['rel_error'], cg_converged=cg['converged'],
                cg_iterations=cg['iterations'], cg_seconds=cg['seconds'], cholesky_seconds=get['cholesky']['seconds'],
                form_plus_cholesky_seconds=get['form+cholesky']['seconds'],
                meets_target=bool(cg['converged'] and cg['rel_error'] < 1e-8))


def _median(fn, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def fit_path(dims, repeats) -> list[dict]:
    "The diagonal NGVI step on a logistic-regression Hessian H = X'WX + I/25 (N = 2D rows, feature scales 0.1..10): its coupled mean step solved by Cholesky vs Jacobi-preconditioned CG (the `solver` option), with the time to form H for scale."
    rows, rng = [], np.random.default_rng(0)
    for D in dims:
        X = rng.standard_normal((2 * D, D)) * np.logspace(-1, 1, D); w = rng.uniform(.01, .25, 2 * D)
        t_form, H = _median(lambda: X.T @ (w[:, None] * X) + np.eye(D) / 25, repeats)
        g = rng.standard_normal(D); q = MvNormal.from_precision(np.zeros(D), np.diag(np.diag(H)) / 2)
        t_c, a = _median(lambda: ngvi_diag_step(q, g, H, .5, solver='cholesky'), repeats)
        t_g, b = _median(lambda: ngvi_diag_step(q, g, H, .5, solver='cg'), repeats)
        rows.append(dict(D=D, form_H_seconds=t_form, step_cholesky_seconds=t_c, step_cg_seconds=t_g, speedup=t_c / t_g,
                         rel_diff=float(np.abs(a.mean - b.mean).max() / np.abs(a.mean).max())))
    return rows


def run(quick: bool = False) -> dict:
    "Run the solver comparison; return a JSON-serialisable dict (rows, acceptance, settings)."
    dims, repeats = (QUICK_DIMS, 1) if quick else (FULL_DIMS, 5)
    t0 = time.perf_counter()
    rows = compare_solvers(dims=dims, repeats=repeats, cond=1e6, cg_budget=20, tol=1e-12)
    fp = fit_path(dims[-2:] if not quick else dims[-1:], repeats)
    return dict(benchmark='solvers', quick=quick, dims=list(dims), repeats=repeats, cond=1e6, cg_budget=20,
                tol=1e-12, rows=rows, acceptance=_acceptance(rows, max(dims)), fit_path=fp,
                wall_seconds=time.perf_counter() - t0,
                environment=dict(python=platform.python_version(), numpy=np.__version__, machine=platform.machine(),
                                 cpu_count=os.cpu_count(), blas_threads=os.environ.get('OPENBLAS_NUM_THREADS')))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='small sizes, one repeat (smoke test)')
    ap.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results' / 'solvers.json'))
    args = ap.parse_args(argv)
    res = run(args.quick)
    print(format_table(res['rows']))
    acc = res['acceptance']
    print(f"\nacceptance (D={acc['D']}, cond 1e6, Jacobi PCG, matrix-free): rel.err {acc['cg_rel_error']:.1e} "
          f"in {acc['cg_iterations']} products, {acc['cg_seconds']:.3f} s; dense Cholesky {acc['cholesky_seconds']:.3f} s "
          f"(form F + Cholesky {acc['form_plus_cholesky_seconds']:.3f} s)")
    for r in res['fit_path']:
        print(f"diag NGVI step, D={r['D']}: Cholesky {r['step_cholesky_seconds']:.4f} s, CG {r['step_cg_seconds']:.4f} s "
              f"({r['speedup']:.2f}x; steps agree to {r['rel_diff']:.1e}); forming H {r['form_H_seconds']:.4f} s")
    out = Path(args.out); out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + '\n')
    print(f"wrote {out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
