"""Shared helpers of the benchmark suite: thread settings, machine description, robust timing, peak memory,
log-log slopes, result files, and the one exact ELBO evaluator (quadrature) that scores every method.

Import this module BEFORE numpy in a benchmark script so that the BLAS thread count it sets takes effect.
"""
from __future__ import annotations
import json, os, platform, subprocess, sys, time, tracemalloc
from pathlib import Path

THREAD_VARS = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'VECLIB_MAXIMUM_THREADS')
# Time on one BLAS thread unless the caller chose otherwise: on a shared 2-core machine multithreaded BLAS
# timings swing by 10x between runs. Effective only if numpy is not yet imported.
for _var in THREAD_VARS: os.environ.setdefault(_var, '1')

import numpy as np
import scipy
import scipy.linalg as sla

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / 'results'
REPO_DIR = BENCH_DIR.parent
SEED = 20261125


# ----------------------------------------------------------------------------------------------- machine
def _blas_info() -> dict:
    "BLAS as numpy was built with it, and (if threadpoolctl is installed) the thread pools actually loaded."
    out = {}
    try:
        cfg = np.show_config(mode='dicts')
        blas = cfg.get('Build Dependencies', {}).get('blas', {})
        out['numpy_blas'] = {k: blas.get(k) for k in ('name', 'version', 'openblas configuration') if k in blas}
        out['simd'] = cfg.get('SIMD Extensions', {}).get('found')
    except Exception as e:  # older numpy: no mode='dicts'
        out['numpy_blas'] = f'unavailable ({type(e).__name__})'
    try:
        from threadpoolctl import threadpool_info
        out['threadpools'] = [{k: p.get(k) for k in ('user_api', 'internal_api', 'num_threads', 'version',
                                                     'architecture')} for p in threadpool_info()]
    except ImportError:
        out['threadpools'] = 'threadpoolctl not installed (thread counts: see env)'
    return out


def _cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or 'unknown'


def _git_commit() -> str | None:
    "The checked-out commit (read-only query), or None outside a git checkout."
    try:
        r = subprocess.run(['git', '-C', str(REPO_DIR), 'rev-parse', '--short', 'HEAD'], capture_output=True,
                           text=True, timeout=5)
        return r.stdout.strip() or None
    except Exception: return None


def machine_info() -> dict:
    "Everything about the machine and software a timing depends on (JSON-serialisable)."
    try: load = list(os.getloadavg())
    except OSError: load = None
    try: mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
    except (ValueError, OSError): mem = None
    try: affinity = len(os.sched_getaffinity(0))
    except AttributeError: affinity = None
    return dict(time=time.strftime('%Y-%m-%d %H:%M:%S %z'), host_cpu=_cpu_model(), cpu_count=os.cpu_count(),
                cpus_usable=affinity, memory_gib=None if mem is None else round(mem, 1), loadavg_1_5_15=load,
                platform=platform.platform(), python=platform.python_version(), numpy=np.__version__,
                scipy=scipy.__version__, threads_env={v: os.environ.get(v) for v in THREAD_VARS + ('OPENBLAS_CORETYPE',)},
                blas=_blas_info(), git_commit=_git_commit())


# ----------------------------------------------------------------------------------------------- timing
def spread(xs) -> dict:
    "Median, min, max and interquartile range of repeated measurements."
    a = np.asarray(xs, float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return dict(median=float(med), min=float(a.min()), max=float(a.max()), iqr=float(q3 - q1), n=int(a.size))


def time_fn(fn, repeats: int = 5, warmup: int = 1, min_seconds: float = 0.0) -> dict:
    "Time `fn()` `repeats` times after `warmup` calls; a call faster than `min_seconds` is looped and averaged."
    for _ in range(warmup): fn()
    inner = 1
    if min_seconds > 0:
        t = time.perf_counter(); fn(); dt = time.perf_counter() - t
        inner = max(1, int(min_seconds / max(dt, 1e-9)))
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner): fn()
        ts.append((time.perf_counter() - t) / inner)
    out = spread(ts); out['inner_loops'] = inner
    return out


def peak_bytes(fn) -> int:
    "Peak bytes allocated through Python/numpy while `fn()` runs (tracemalloc; BLAS's own buffers are not seen)."
    tracemalloc.start(); tracemalloc.reset_peak()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return int(tracemalloc.get_traced_memory()[1] - base)
    finally: tracemalloc.stop()


def loglog_slope(x, y) -> float | None:
    "Least-squares slope of log y against log x (the empirical exponent of a cost), None if under 2 points."
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0)
    if ok.sum() < 2: return None
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


# ----------------------------------------------------------------------------------------------- files
def _jsonable(o):
    if isinstance(o, dict): return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)): return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray): return _jsonable(o.tolist())
    if isinstance(o, (np.bool_,)): return bool(o)
    if isinstance(o, np.integer): return int(o)
    if isinstance(o, (float, np.floating)):
        f = float(o)
        return f if np.isfinite(f) else None   # JSON has no inf/nan
    return o


def write_json(name: str, data: dict, out_dir: Path = RESULTS_DIR) -> Path:
    "Write `data` to out_dir/name.json atomically (via a .tmp file)."
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f'{name}.json'
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(_jsonable(data), indent=1) + '\n')
    tmp.replace(path)
    return path


def new_figure(*args, **kw):
    "A matplotlib figure on the headless Agg backend, dpi 80."
    import matplotlib
    if 'matplotlib.pyplot' not in sys.modules: matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    kw.setdefault('dpi', 80)
    return plt.subplots(*args, **kw)


def save_figure(fig, name: str, out_dir: Path = RESULTS_DIR) -> Path:
    import matplotlib.pyplot as plt
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f'{name}.png'
    fig.savefig(path, dpi=80, bbox_inches='tight')
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------- logistic regression
class LogReg:
    "Bayesian logistic regression y_i ~ Bernoulli(sigmoid(x_i^T z)), z ~ N(prior_mean, prior_var I), held as arrays."
    def __init__(self, X, y, prior_var: float = 1.0, prior_mean=None):
        self.X = np.ascontiguousarray(X, float); self.y = np.asarray(y, float)
        self.N, self.D = self.X.shape
        self.prior_var = float(prior_var)
        self.m0 = np.zeros(self.D) if prior_mean is None else np.asarray(prior_mean, float)
        from ngvi_lit.quadrature import glm_likelihood
        self.lik = glm_likelihood('logistic')

    def expect(self, m, L_cov):
        "(sum E f, E f' per row, E f'' per row) under q = N(m, L_cov L_cov^T), by quadrature."
        mu = self.X @ m
        B = self.X @ L_cov
        sd = np.sqrt(np.einsum('ij,ij->i', B, B))
        ef, e1, e2 = self.lik.expect(self.y, mu, sd)
        return float(ef.sum()), e1, e2

    def elbo(self, m, L_cov, ef_sum: float | None = None) -> float:
        "The exact ELBO of q = N(m, L_cov L_cov^T) (L_cov lower triangular, the Cholesky factor of the COVARIANCE)."
        if ef_sum is None: ef_sum = self.expect(m, L_cov)[0]
        D, v0 = self.D, self.prior_var
        logdet_cov = 2 * np.log(np.abs(np.diag(L_cov))).sum()
        d = m - self.m0
        e_logprior = -0.5 * (np.sum(L_cov**2) + d @ d) / v0 - 0.5 * D * np.log(2 * np.pi * v0)
        entropy = 0.5 * D * (1 + np.log(2 * np.pi)) + 0.5 * logdet_cov
        return ef_sum + e_logprior + entropy

    def elbo_prec(self, m, L_prec) -> float:
        "The exact ELBO of q = N(m, S^{-1}) given the lower Cholesky factor of the precision S = L L^T."
        Linv = sla.solve_triangular(L_prec, np.eye(self.D), lower=True)   # Sigma = Linv^T Linv
        # a lower Cholesky factor of Sigma is not Linv^T (upper), but any square root works for the sds and
        # the trace; only the log-determinant needs the diagonal, which is the same for Linv^T.
        return self.elbo(m, Linv.T)


def ngvi_logreg(model: LogReg, iters: int = 100, rho: float = 1.0, tol_gap: float = 0.0, callback=None,
                m=None, S=None):
    """Full-covariance Gaussian NGVI for logistic regression with exact (quadrature) expectations.
    S <- (1-rho) S + rho E[H], m <- m - rho S^{-1} E[g], with rho halved whenever the exact ELBO would decrease
    (the ELBO at the candidate comes free with the expectations the next step needs). Returns (m, L_prec, trace).
    `callback(it, passes, m, L_prec, elbo)` is called after every accepted step (and at the start)."""
    X, y, D = model.X, model.y, model.D
    s0 = 1 / model.prior_var
    m = model.m0.copy() if m is None else m
    S = np.eye(D) * s0 if S is None else S
    L = np.linalg.cholesky(S)

    def at(m, L):
        Linv = sla.solve_triangular(L, np.eye(D), lower=True, check_finite=False)
        ef, e1, e2 = model.expect(m, Linv.T)
        return model.elbo(m, Linv.T, ef), e1, e2

    f, e1, e2 = at(m, L); passes = 1
    if callback: callback(0, passes, m, L, f)
    r = rho
    for it in range(1, iters + 1):
        g = s0 * (m - model.m0) - X.T @ e1
        H = s0 * np.eye(D) + (X.T * -e2) @ X
        while True:
            S_new = (1 - r) * S + r * H
            L_new = np.linalg.cholesky(S_new)
            m_new = m - r * sla.cho_solve((L_new, True), g, check_finite=False)
            f_new, e1n, e2n = at(m_new, L_new); passes += 1
            if f_new >= f - 1e-12 * abs(f) or r < 1e-6: break
            r /= 2
        m, S, L, f, e1, e2 = m_new, S_new, L_new, f_new, e1n, e2n
        r = min(rho, 2 * r)
        if callback and callback(it, passes, m, L, f): break
    return m, L, f


def script_main(name: str, run, summary, doc: str, argv=None) -> int:
    "Command-line entry of one benchmark module: `python bench/bench_NAME.py [--quick]`."
    import argparse
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument('--quick', action='store_true')
    args = ap.parse_args(argv)
    res = run(args.quick); res['machine'] = machine_info()
    print(summary(res))
    print('wrote', write_json(name, res))
    return 0
