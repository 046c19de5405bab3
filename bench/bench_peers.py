"""NGVI against the tools people use, on the same logistic-regression problems, every method's Gaussian q scored
by ONE exact ELBO evaluator (bench/common.py LogReg.elbo: ngvi_lit.quadrature, no Monte Carlo).

Methods
  ngvi     ngvi_lit.models.LogisticRegression.expectations (exact, quadrature) + ngvi_lit.updates.ngvi_gaussian_step,
           rho = 1, halved while the exact ELBO would decrease (the ELBO comes with the expectations).
  adam     the library's own Euclidean Adam baseline (ngvi_lit.baseline), when that module exists.
  numpyro  NumPyro SVI, AutoMultivariateNormal (full rank) + Adam, Trace_ELBO with one particle, learning rates swept;
           run in a subprocess of an interpreter that has numpyro (this one, $NGVI_BENCH_PYTHON or /tmp/bench-venv).
Problems: breast cancer (569 x 30 + intercept) with raw and with standardised features; synthetic logistic
regressions whose design has cond(X^T X) = 1 .. 1e6. Prior N(0, I) throughout.
Reported: iterations, gradient evaluations (data passes) and wall time to ELBO gaps 1, 0.1, 0.01, 1e-6 nats,
final and best gap. The optimum ELBO* is the best value seen (a converged NGVI run; its stationarity residual
is recorded: the ELBO is concave in (m, chol Sigma), so a stationary point is the optimum).

Usage: python bench/bench_peers.py [--quick]   (writes bench/results/peers.json and peers_*.png)
"""
from __future__ import annotations
import os, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402

GAPS = (1.0, 0.1, 0.01, 1e-6)
NGVI_ITERS = 40
PRIOR_VAR = 1.0


# ----------------------------------------------------------------------------------------------- problems
def problems(quick: bool) -> dict:
    from ngvi_lit.datasets import load_breast_cancer
    d = load_breast_cancer()
    Xr = d.X
    Xs = (Xr - Xr.mean(0)) / Xr.std(0)
    one = np.ones((len(Xr), 1))
    out = {'breast_cancer_raw': dict(X=np.hstack([one, Xr]), y=d.y, desc='breast cancer 569 x 30, raw features + intercept'),
           'breast_cancer_std': dict(X=np.hstack([one, Xs]), y=d.y, desc='breast cancer 569 x 30, standardised + intercept')}
    for kappa in ((1e0, 1e4) if quick else (1e0, 1e2, 1e4, 1e6)):
        N, D = 500, 10
        rng = np.random.default_rng([common.SEED, int(np.log10(kappa))])
        s = kappa ** (np.arange(D) / (2 * (D - 1)))           # column scales: cond(X^T X) ~ kappa
        Z = rng.standard_normal((N, D))
        Q, _ = np.linalg.qr(Z)                                 # orthogonal columns, so the condition number is exact
        X = Q * np.sqrt(N) * s
        z = 2 * rng.standard_normal(D) / (s * np.sqrt(D))
        y = (rng.random(N) < 1 / (1 + np.exp(-X @ z))).astype(float)
        out[f'cond_1e{int(np.log10(kappa))}'] = dict(X=X, y=y, desc=f'synthetic 500 x 10, cond(X^T X) = {kappa:.0e}')
    return out


# ----------------------------------------------------------------------------------------------- NGVI (library)
def _counting(model):
    "Count the model's expectation calls (data passes) by wrapping the instance's method."
    model.n_passes = 0
    inner = model.expectations
    def expectations(*a, **k):
        model.n_passes += 1
        return inner(*a, **k)
    model.expectations = expectations
    return model


def ngvi_library(X, y, iters: int):
    """The library's default NGVI (`ngvi_lit.fit.NGVI()`: exact expectations, iBLR rule, automatic step size), driven
    step by step through its public init/step/q_of API. Returns ([(iteration, data passes, seconds, m, L_prec)], model)."""
    from ngvi_lit.models import LogisticRegression
    from ngvi_lit.fit import NGVI
    model = _counting(LogisticRegression(X, y, np.sqrt(PRIOR_VAR)))
    alg, rng = NGVI(), np.random.default_rng(common.SEED)
    t0 = time.perf_counter()
    s = alg.init(model)
    q = alg.q_of(s)
    traj = [(0, model.n_passes, time.perf_counter() - t0, q.mean, q.chol_prec)]
    for it in range(1, iters + 1):
        s, info = alg.step(model, s, rng)
        q = alg.q_of(s)
        traj.append((it, model.n_passes, time.perf_counter() - t0, q.mean, q.chol_prec))
    return traj, model


def adam_baseline(X, y, lrs, steps: int, checkpoints: int = 200):
    "The library's Euclidean Adam baseline (`ngvi_lit.baseline.AdamVI`, one draw per step), each learning rate."
    try:
        from ngvi_lit.baseline import AdamVI
        from ngvi_lit.models import LogisticRegression
    except ImportError as e:
        return [], f'ngvi_lit.baseline not available ({e}): not run'
    model = LogisticRegression(X, y, np.sqrt(PRIOR_VAR))
    every = max(1, steps // checkpoints)
    out = []
    for lr in lrs:
        alg, rng = AdamVI(lr=lr), np.random.default_rng(common.SEED)
        s = alg.init(model); run = 0.0
        q = alg.q_of(s); pts = [(0, 0.0, q.mean, q.chol_prec)]
        for k in range(1, steps + 1):
            t0 = time.perf_counter()
            try: s, _ = alg.step(model, s, rng)
            except Exception as e:   # a diverged run stops; its last state is scored
                break
            run += time.perf_counter() - t0
            if k % every == 0 or k == steps:
                try: q = alg.q_of(s)
                except ValueError: break
                pts.append((k, run, q.mean, q.chol_prec))
        out.append((lr, pts))
    return out, None


# ----------------------------------------------------------------------------------------------- NumPyro
def numpyro_python() -> tuple[str | None, str]:
    "An interpreter that can import numpyro: this one, $NGVI_BENCH_PYTHON, or /tmp/bench-venv/bin/python."
    cands = [sys.executable, os.environ.get('NGVI_BENCH_PYTHON'), '/tmp/bench-venv/bin/python']
    for py in cands:
        if not py or not Path(py).exists(): continue
        r = subprocess.run([py, '-c', 'import numpyro, jax; print(numpyro.__version__, jax.__version__)'],
                           capture_output=True, text=True)
        if r.returncode == 0: return py, r.stdout.strip()
    return None, 'numpyro not installed (pip install -e ".[bench]", or set NGVI_BENCH_PYTHON)'


def run_numpyro(py, X, y, lrs, steps, chunk, timeout=3600):
    "Run the NumPyro worker; return its outputs as a dict, or raise RuntimeError with its stderr."
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / 'in.npz', Path(tmp) / 'out.npz'
        np.savez(inp, X=X, y=y, prior_var=PRIOR_VAR, lrs=np.asarray(lrs, float), steps=steps, chunk=chunk,
                 seed=common.SEED % 2**31, x64=True)
        env = dict(os.environ, JAX_PLATFORMS='cpu',
                   XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')
        t0 = time.perf_counter()
        r = subprocess.run([py, str(Path(__file__).resolve().parent / '_numpyro_svi.py'), str(inp), str(out)],
                           capture_output=True, text=True, env=env, timeout=timeout)
        wall = time.perf_counter() - t0
        if r.returncode != 0: raise RuntimeError(r.stderr[-2000:])
        res = {k: v for k, v in np.load(out).items()}
    res['process_wall_seconds'] = wall
    return res


# ----------------------------------------------------------------------------------------------- scoring
def score(scorer: common.LogReg, points):
    "Exact ELBO of each (m, L) point: ('prec', L_prec) or ('cov', L_cov)."
    out = []
    for kind, m, L in points:
        try: out.append(scorer.elbo_prec(m, L) if kind == 'prec' else scorer.elbo(m, np.tril(L)))
        except (np.linalg.LinAlgError, ValueError, FloatingPointError): out.append(-np.inf)
    return np.array(out)


def hitting(iters, evals, secs, gaps) -> dict:
    "First iteration / gradient evaluation / time at which the gap is <= each target."
    gaps = np.asarray(gaps)
    out = {}
    for g in GAPS:
        idx = np.flatnonzero(gaps <= g)
        out[f'{g:g}'] = None if idx.size == 0 else dict(iters=int(iters[idx[0]]), grad_evals=int(evals[idx[0]]),
                                                        seconds=float(secs[idx[0]]))
    return out


def _summ(name, iters, evals, secs, elbos, best, **extra):
    gaps = np.maximum(best - np.asarray(elbos), 0.0)
    return dict(method=name, to_gap=hitting(np.asarray(iters), np.asarray(evals), np.asarray(secs), gaps),
                final_gap=float(gaps[-1]), best_gap=float(gaps.min()), iters=int(iters[-1]), grad_evals=int(evals[-1]),
                seconds=float(secs[-1]), curve=dict(seconds=list(map(float, secs)), gap=list(map(float, gaps)),
                                                    iters=list(map(int, iters))), **extra)


def bench_problem(name, prob, quick, py, lrs, steps, repeats, adam_lrs=(1e-2,), adam_steps=1000):
    X, y = prob['X'], prob['y']
    scorer = common.LogReg(X, y, PRIOR_VAR)
    res = dict(problem=name, description=prob['desc'], N=int(X.shape[0]), D=int(X.shape[1]),
               cond_XtX=float(np.linalg.cond(X.T @ X)), methods=[])
    # NGVI: timing repeats (median of cumulative times per iteration), then score the last run's iterates
    runs = []
    for _ in range(repeats):
        traj, model = ngvi_library(X, y, iters=NGVI_ITERS)
        runs.append(traj)
    secs = np.median(np.array([[t[2] for t in tr] for tr in runs]), axis=0)
    traj = runs[-1]
    elbo_ngvi = score(scorer, [('prec', t[3], t[4]) for t in traj])
    q_last = traj[-1]
    # stationarity of the last NGVI iterate: g = 0 and S = H at the optimum
    from ngvi_lit.families import MvNormal
    q = MvNormal.from_precision(q_last[3], q_last[4] @ q_last[4].T)
    ex = model.expectations(q)
    res['reference'] = dict(source=f'ngvi_lit.fit.NGVI() after {NGVI_ITERS} iterations (max with every ELBO seen)',
                            grad_inf_norm=float(np.abs(ex.grad).max()),
                            rel_curvature_residual=float(np.linalg.norm(q.prec - ex.hess) / np.linalg.norm(q.prec)),
                            library_elbo_minus_scorer=float(ex.elbo - elbo_ngvi[-1]))
    curves = [('ngvi', [t[0] for t in traj], [t[1] for t in traj], secs, elbo_ngvi, {})]
    secs_per_iter = float(secs[-1] / traj[-1][0])
    # NumPyro
    npy_note = None
    if py is None:
        npy_note = numpyro_note
    else:
        try:
            o = run_numpyro(py, X, y, lrs, steps, chunk=max(1, steps // 250))
            res['numpyro_env'] = dict(python=py, jax=str(o['jax_version']), numpyro=str(o['numpyro_version']),
                                      x64=bool(o['x64']), import_seconds=float(o['import_seconds']),
                                      process_wall_seconds=float(o['process_wall_seconds']))
            for i, lr in enumerate(lrs):
                steps_i, t_i = o[f'lr{i}_step'], o[f'lr{i}_time']
                el = score(scorer, [('cov', m, L) for m, L in zip(o[f'lr{i}_loc'], o[f'lr{i}_tril'])])
                comp = float(o[f'lr{i}_init_seconds'] + o[f'lr{i}_compile_seconds'])
                curves.append((f'numpyro lr={lr:g}', steps_i, steps_i, t_i, el,
                               dict(lr=float(lr), init_seconds=float(o[f'lr{i}_init_seconds']),
                                    compile_seconds=float(o[f'lr{i}_compile_seconds']), compile_total_seconds=comp)))
        except Exception as e:   # report, don't crash the suite
            npy_note = f'numpyro run failed: {type(e).__name__}: {str(e)[-500:]}'
    res['numpyro_note'] = npy_note
    ad, res['adam_note'] = adam_baseline(X, y, adam_lrs, adam_steps)
    for lr, pts in ad:
        el = score(scorer, [('prec', m, L) for _, _, m, L in pts])
        ks = [p[0] for p in pts]
        curves.append((f'adam lr={lr:g}', ks, ks, [p[1] for p in pts], el, dict(lr=float(lr))))
    best = max(float(np.max(c[4])) for c in curves)
    res['elbo_star'] = best
    res['methods'] = [_summ(n, it, ev, s, el, best, **ex) for n, it, ev, s, el, ex in curves]
    res['methods'][0]['seconds_per_iteration'] = secs_per_iter
    npm = [m for m in res['methods'] if m['method'].startswith('numpyro')]
    for prefix in ('numpyro', 'adam'):   # best learning rate: smallest final gap
        grp = [m for m in res['methods'] if m['method'].startswith(prefix)]
        if grp: min(grp, key=lambda m: (m['final_gap'], m['seconds']))['best_lr'] = True
    return res


def acceptance(pr) -> dict | None:
    "NGVI vs NumPyro on the raw-feature breast-cancer problem (the issue's acceptance table)."
    ng = pr['methods'][0]
    npm = [m for m in pr['methods'] if m.get('best_lr') and m['method'].startswith('numpyro')]
    resolution = 1e-12 * abs(pr['elbo_star'])     # gaps below this are rounding in the evaluator
    out = dict(problem=pr['problem'], ngvi_seconds_to_0_01=(ng['to_gap']['0.01'] or {}).get('seconds'),
               ngvi_seconds_to_1e_6=(ng['to_gap']['1e-06'] or {}).get('seconds'),
               ngvi_final_gap=ng['final_gap'], evaluator_resolution=resolution)
    if not npm: return dict(out, numpyro='not run: ' + str(pr.get('numpyro_note')))
    b = npm[0]
    allnp = [m for m in pr['methods'] if m['method'].startswith('numpyro')]
    warm = min(m['compile_total_seconds'] for m in allnp)      # the cheapest compile: JAX already warm in-process
    cold = allnp[0]['compile_total_seconds']                    # the first compile in a fresh process
    out.update(numpyro_best_lr=b['lr'], numpyro_steps=b['iters'], numpyro_final_gap=b['final_gap'],
               numpyro_best_gap_any_checkpoint=b['best_gap'], numpyro_compile_seconds=warm,
               numpyro_compile_seconds_cold=cold, numpyro_compile_seconds_best_lr=b['compile_total_seconds'],
               numpyro_import_seconds=pr.get('numpyro_env', {}).get('import_seconds'),
               numpyro_run_seconds=b['seconds'], numpyro_total_seconds=b['compile_total_seconds'] + b['seconds'])
    out['gap_ratio'] = b['final_gap'] / max(ng['final_gap'], resolution)
    t01 = out['ngvi_seconds_to_0_01']
    out['meets_time_target'] = t01 is not None and t01 < out['numpyro_compile_seconds']
    out['meets_gap_target'] = out['gap_ratio'] >= 1000
    return out


def plot(res, out_dir=common.RESULTS_DIR):
    probs = res['problems']
    n = len(probs); cols = min(3, n); rows = -(-n // cols)
    fig, axes = common.new_figure(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, pr in zip(axes.flat, probs):
        for m in pr['methods']:
            c = m['curve']
            s = np.maximum(np.asarray(c['seconds'], float), 1e-5); g = np.maximum(np.asarray(c['gap'], float), 1e-13)
            if m['method'] == 'ngvi': ax.loglog(s, g, 'k-o', ms=3, lw=2, label='NGVI (ngvi_lit)')
            else:
                col, lab = ('C1', 'NumPyro') if m['method'].startswith('numpyro') else ('C0', 'ngvi_lit Adam')
                if m.get('best_lr'): ax.loglog(s, g, '-', color=col, lw=1.5, label=f"{lab}, best lr {m['lr']:g}")
                else: ax.loglog(s, g, '-', color=col, lw=.6, alpha=.35)
        for g in GAPS: ax.axhline(g, color='grey', lw=.5, ls=':')
        ax.set(title=pr['problem'], xlabel='wall seconds (NumPyro: excl. compile)', ylabel='ELBO gap (nats)')
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]: ax.axis('off')
    fig.tight_layout()
    return [str(common.save_figure(fig, 'peers_gap_vs_time', out_dir))]


def run(quick: bool = False) -> dict:
    global numpyro_note
    t0 = time.perf_counter()
    py, numpyro_note = numpyro_python()
    if quick and py is not None and not os.environ.get('NGVI_BENCH_QUICK_NUMPYRO'):
        py, numpyro_note = None, 'skipped in --quick (JAX compilation alone takes longer than the quick budget)'
    lrs = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    res = dict(benchmark='peers', quick=quick, seed=common.SEED, prior_var=PRIOR_VAR, gaps=GAPS,
               numpyro_python=py, numpyro_note=numpyro_note, lrs=lrs, problems=[])
    for name, prob in problems(quick).items():
        big = name.startswith('breast')
        steps = 2_000 if quick else (50_000 if big else 20_000)
        these = lrs if big else (1e-3, 1e-2, 1e-1)
        adam_steps = 200 if quick else (20_000 if big else 10_000)
        res['problems'].append(bench_problem(name, prob, quick, py, these, steps, 1 if quick else 5,
                                             adam_lrs=(1e-2,) if quick else (1e-3, 1e-2, 1e-1), adam_steps=adam_steps))
        print(f'  peers: {name} done ({time.perf_counter() - t0:.0f} s)', flush=True)
    res['acceptance'] = acceptance(res['problems'][0])
    res['figures'] = plot(res)
    res['wall_seconds'] = time.perf_counter() - t0
    return res


def summary(res) -> str:
    lines = []
    for pr in res['problems']:
        lines.append(f"{pr['problem']}  (N={pr['N']}, D={pr['D']}, cond={pr['cond_XtX']:.1e}, ELBO*={pr['elbo_star']:.6f})")
        lines.append(f"  {'method':<22}{'t->1':>9}{'t->0.1':>9}{'t->0.01':>9}{'t->1e-6':>9}{'evals->0.01':>12}{'final gap':>11}{'compile s':>10}")
        for m in pr['methods']:
            if 'lr' in m and not m.get('best_lr'): continue
            tg = [m['to_gap'][f'{g:g}'] for g in GAPS]
            f = lambda h: '-' if h is None else f"{h['seconds']:.3g}"
            ev = '-' if tg[2] is None else str(tg[2]['grad_evals'])
            lines.append(f"  {m['method']:<22}{f(tg[0]):>9}{f(tg[1]):>9}{f(tg[2]):>9}{f(tg[3]):>9}{ev:>12}"
                         f"{m['final_gap']:>11.2e}{m.get('compile_total_seconds', 0):>10.2f}")
        for k in ('numpyro_note', 'adam_note'):
            if pr.get(k): lines.append(f'  note: {pr[k]}')
    lines.append(f"acceptance: {res['acceptance']}")
    return '\n'.join(lines)


numpyro_note = None


def main(argv=None) -> int:
    return common.script_main('peers', run, summary, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
