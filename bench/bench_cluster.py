"""NGVI on Dask (issue 15): row throughput of the exact GLM expectations before/after, and the acceptance run
(N = 1e7, D = 20 logistic stored on disk as a chunked .npy stack; single process vs 1 and 2 Dask worker processes).

Part 1, throughput (one BLAS thread, one core): (E f, E f', E f'') per row for logistic, probit, Poisson by the code
before issue 15 (copied verbatim below as `old_*`: graded rules for every row, log y! recomputed per call) and by
the library now (`Lik1D.kernel`: Gauss-Hermite bands for sd < 1, log y! once per data set), same rows, same run,
interleaved repeats. Regimes of predictive sd: 'posterior' (sds of a converged q on N = 1e5 rows, the regime of
every iteration after the first few), 'fit mix' (sd ~ |N(0, 0.5)| + 0.05, the earlier measurement), 'wide' (sd
log-uniform in [1, 10], a start at a wide prior: shared panel rules there) and 'very wide' (sd in [10, 100]; not for
Poisson, whose sd is capped at 1.5 to keep exp(mean + sd^2/2) finite). Also the whole exact pass (GLM.expectations)
per row at D = 20, posterior regime, old = the pass before issue 15 (its _exact_rows copied below, old 1-D functions).

Part 2, acceptance: data written under /tmp (deleted afterwards, never committed) as dask npy stacks (partitions of
250_000 rows); single process = the in-library GLM over a ChunkSource reading the same files; Dask = cluster.DaskGLM
on a LocalCluster of 2 (and 1) worker processes x 1 thread. Full fits to convergence (single process and 2 workers):
gap (predicted ELBO gain left, `updates.predicted_gain`), mean/cov agreement, peak RSS per worker (VmHWM). Time per
iteration: one exact pass at the optimum, timed in interleaved rounds (single process, 1 worker, 2 workers; the
machine is shared), min over rounds, times the mean number of passes per iteration of the 2-worker fit.

Usage: python bench/bench_cluster.py [--quick]   (quick: N = 2e5 for part 2, smaller throughput arrays)
"""
from __future__ import annotations
import os, shutil, sys, tempfile, time, resource
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (sets BLAS threads before numpy)
import numpy as np  # noqa: E402
import scipy.special as sc  # noqa: E402
from ngvi_lit.quadrature import glm_likelihood, gauss_expect, loglik_probit, _legendre  # noqa: E402
from ngvi_lit.checks import check_array  # noqa: E402

# ------------------------------------------------------------------ the code before issue 15 (verbatim copy)
_SQ2PI = np.sqrt(2 * np.pi); _K = 10.; _S_POINT = 1e-8; _T = 40.

def _old_side_nodes(mu, s, n):
    x, w = _legendre(n)
    a = np.clip(mu - _K * s, 0., _T); b = np.clip(mu + _K * s, 0., _T)
    h, c = (b - a) / 2, (b + a) / 2
    u = c[:, None] + h[:, None] * x
    z = (u - mu[:, None]) / s[:, None]
    return u, w * h[:, None] * np.exp(-.5 * z * z) / (s[:, None] * _SQ2PI)

def _old_logistic_remainder(mu, s, n):
    out = np.zeros((3, mu.size))
    for d in (1., -1.):
        md = d * mu
        act = (md + _K * s > 0) & (md - _K * s < _T)
        if not act.any(): continue
        u, wt = _old_side_nodes(md[act], s[act], n)
        e = np.exp(-u); p = e / (1. + e)
        out[0, act] -= (np.log1p(e) * wt).sum(1)
        out[1, act] += d * (p * wt).sum(1)
        out[2, act] += (p * (1. - p) * wt).sum(1)
    return out

def old_expect_logistic(y, mean, sd, n: int = 40):
    y, mean, sd = (check_array(a, nm) for a, nm in ((y, 'y'), (mean, 'mean'), (sd, 'sd')))
    if np.any((y != 0) & (y != 1)): raise ValueError("`y` must contain only 0 and 1 for the logistic likelihood")
    if np.any(sd < 0): raise ValueError("`sd` must be >= 0 (a standard deviation, not a variance)")
    y, mean, sd = np.broadcast_arrays(y, mean, sd)
    shape = mean.shape
    sgn = 2. * y.ravel() - 1.
    mu, s = sgn * mean.ravel(), sd.ravel()
    point = s < _S_POINT
    s = np.where(point, 1., s)
    z = mu / s
    emin = mu * sc.ndtr(-z) - s * np.exp(-.5 * z * z) / _SQ2PI
    r = _old_logistic_remainder(mu, s, int(n))
    ef, ep, eq = emin + r[0], sc.ndtr(-z) + r[1], r[2]
    if point.any():
        t = mu[point]; e = np.exp(-np.abs(t)); p = np.where(t >= 0, e, 1.) / (1. + e)
        ef[point], ep[point], eq[point] = np.minimum(t, 0.) - np.log1p(e), p, p * (1. - p)
    return ef.reshape(shape), (sgn * ep).reshape(shape), (-eq).reshape(shape)

def _old_prep(y, mean, sd):
    y, mean, sd = (check_array(a, nm) for a, nm in ((y, 'y'), (mean, 'mean'), (sd, 'sd')))
    if np.any(sd < 0): raise ValueError("`sd` must be >= 0 (a standard deviation, not a variance)")
    return np.broadcast_arrays(y, mean, sd)

def old_expect_poisson(y, mean, sd):
    y, mean, sd = _old_prep(y, mean, sd)
    if np.any(y < 0): raise ValueError("`y` must be non-negative counts for the Poisson likelihood")
    with np.errstate(over='ignore'): e = np.exp(mean + sd * sd / 2)
    return y * mean - e - sc.gammaln(y + 1.), y - e, -e

def old_expect_probit(y, mean, sd, n: int = 56):
    y, mean, sd = _old_prep(y, mean, sd)
    if np.any((y != 0) & (y != 1)): raise ValueError("`y` must contain only 0 and 1 for the probit likelihood")
    sgn = 2. * y - 1.
    ef, ep, eq = gauss_expect(lambda t: loglik_probit(1., t), sgn * mean, sd, n=n, rowwise=False)
    return ef, sgn * ep, eq

OLD = {'logistic': old_expect_logistic, 'probit': old_expect_probit, 'poisson': old_expect_poisson}

def old_exact_rows(self, q, curvature):
    "GLM._exact_rows before issue 15 (whole-array passes over X)."
    import scipy.linalg as sla
    X = self.X
    A = sla.solve_triangular(q.chol_prec, X.T, lower=True, check_finite=False)
    mu, sd = X @ q.mean, np.sqrt((A * A).sum(0))
    with np.errstate(over='ignore', invalid='ignore'):
        ef, e1, e2 = self._expect_1d(mu, sd)
        if curvature == 'ggn': e2 = -gauss_expect(self._fisher, mu, sd, rowwise=False)
        return ef, X.T @ e1, (X * e2[:, None]).T @ X


# ------------------------------------------------------------------ part 1: throughput
def _rows(regime: str, n: int, lik: str, seed: int = 0):
    "(y, mean, sd) rows of one regime."
    rng = np.random.default_rng([seed, n])
    if regime == 'posterior':            # the predictive moments of a converged q, N = 1e5 rows, D = 20
        from ngvi_lit.families import MvNormal
        D = 20; Nq = 100_000
        Xq = rng.standard_normal((Nq, D)); z = rng.standard_normal(D) / np.sqrt(D) * 2
        S = np.eye(D) + Xq.T @ Xq * (0.15 if lik != 'poisson' else 1.)   # roughly the expected curvature
        q = MvNormal.from_precision(z, S)
        X = rng.standard_normal((n, D))
        mean = X @ q.mean if lik != 'poisson' else X @ q.mean * .3
        sd = np.sqrt(np.einsum('ij,jk,ik->i', X, q.cov, X))
    elif regime == 'fit mix':
        mean = rng.standard_normal(n) * 2; sd = np.abs(rng.standard_normal(n)) * .5 + .05
    elif regime == 'wide':
        mean = rng.standard_normal(n) * 2; sd = 10 ** rng.uniform(0, 1, n)
    else:                                # 'very wide': a start at a very wide prior
        mean = rng.standard_normal(n) * 2; sd = 10 ** rng.uniform(1, 2, n)
    if lik == 'poisson':
        mean = np.clip(mean, -3, 2); sd = np.minimum(sd, 1.5)
        y = rng.poisson(np.exp(mean)).astype(float)
    else: y = (rng.random(n) < .5).astype(float)
    return y, mean, sd


def throughput(quick: bool) -> dict:
    n = 20_000 if quick else 200_000
    reps = 3 if quick else 5
    out = {}
    for lik in ('logistic', 'probit', 'poisson'):
        L = glm_likelihood(lik)
        for regime in (('posterior', 'fit mix', 'wide', 'very wide') if lik != 'poisson' else ('posterior', 'fit mix', 'wide')):
            y, mean, sd = _rows(regime, n, lik)
            c = L.row_const(y) if L.row_const else None            # once per data set (as the models do)
            a_old, a_new = OLD[lik](y, mean, sd), L.kernel(y, mean, sd, c)
            err = max(float(np.max(np.abs(u - v) / np.maximum(1, np.abs(v)))) for u, v in zip(a_new, a_old))
            t_old, t_new = [], []
            for _ in range(reps):                                  # interleaved: both see the same machine load
                t = time.perf_counter(); OLD[lik](y, mean, sd); t_old.append(time.perf_counter() - t)
                t = time.perf_counter(); L.kernel(y, mean, sd, c); t_new.append(time.perf_counter() - t)
            t = time.perf_counter(); L.expect(y, mean, sd); t_pub = time.perf_counter() - t
            o, w = min(t_old) / n * 1e6, min(t_new) / n * 1e6
            out[f'{lik}/{regime}'] = dict(us_per_row_old=o, us_per_row_new=w, ratio=o / w, us_per_row_new_checked=t_pub / n * 1e6,
                                          max_rel_diff_new_vs_old=err, sd_median=float(np.median(sd)), rows=n)
            print(f'  {lik:8s} {regime:10s} old {o:7.3f} us/row  new {w:7.3f} us/row  x{o / w:6.1f}  (|new-old| {err:.1e})', flush=True)
    return out


def whole_pass(quick: bool) -> dict:
    "GLM.expectations (exact) per row at D = 20, posterior regime: the linear algebra around the 1-D kernels."
    from ngvi_lit.models import LogisticRegression, ProbitRegression, PoissonRegression
    from ngvi_lit.families import MvNormal
    n, D = (20_000 if quick else 200_000), 20
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n, D)); z = rng.standard_normal(D) / np.sqrt(D)
    eta = X @ z
    out = {}
    for C, y in ((LogisticRegression, (rng.random(n) < sc.expit(eta)).astype(float)),
                 (ProbitRegression, (rng.random(n) < sc.ndtr(eta)).astype(float)),
                 (PoissonRegression, rng.poisson(np.exp(eta)).astype(float))):
        m = C(X, y, 1.)
        q = MvNormal.from_precision(z, np.eye(D) + X.T @ X / 4)
        tn = common.time_fn(lambda: m.expectations(q), repeats=3)['min']
        import ngvi_lit.models as M                        # the same pass with the old 1-D functions
        lik_old = m.lik._replace(kernel=None, expect=OLD[m.lik.name])
        m_old = C(X, y, 1.); m_old.lik = lik_old
        m_old._exact_rows = (lambda mo: lambda q_, cv: old_exact_rows(mo, q_, cv))(m_old)   # the pass before issue 15
        to = common.time_fn(lambda: m_old.expectations(q), repeats=3)['min']
        out[m.lik.name] = dict(us_per_row_old=to / n * 1e6, us_per_row_new=tn / n * 1e6, ratio=to / tn, D=D, rows=n)
        print(f'  whole exact pass {m.lik.name:8s}: old {to / n * 1e6:.3f} new {tn / n * 1e6:.3f} us/row (x{to / tn:.1f})', flush=True)
    return out


# ------------------------------------------------------------------ part 2: acceptance on Dask
def _write_stack(d: Path, N: int, D: int, rows: int, seed: int = 15):
    "X, y as dask npy stacks (one .npy per partition of `rows` rows), generated partition by partition."
    import dask.array as da
    import pickle
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(D) / np.sqrt(D) * 2
    (d / 'X').mkdir(parents=True); (d / 'y').mkdir()
    chunks = tuple(min(rows, N - a) for a in range(0, N, rows))
    for k, a in enumerate(range(0, N, rows)):
        r = np.random.default_rng([seed, k])
        Xc = r.standard_normal((chunks[k], D)); Xc[:, 0] = 1.
        yc = (r.random(chunks[k]) < 1 / (1 + np.exp(-Xc @ z))).astype(float)
        np.save(d / 'X' / f'{k}.npy', Xc); np.save(d / 'y' / f'{k}.npy', yc)
    with open(d / 'X' / 'info', 'wb') as f: pickle.dump({'chunks': (chunks, (D,)), 'dtype': np.dtype(float), 'axis': 0}, f)
    with open(d / 'y' / 'info', 'wb') as f: pickle.dump({'chunks': (chunks,), 'dtype': np.dtype(float), 'axis': 0}, f)
    return len(chunks)


def _single_model(d: Path, N: int, D: int, P: int):
    from ngvi_lit.sources import ChunkSource
    from ngvi_lit.models import LogisticRegression
    def chunks():
        for k in range(P): yield np.load(d / 'X' / f'{k}.npy'), np.load(d / 'y' / f'{k}.npy')
    return LogisticRegression(ChunkSource(chunks, N, D), None, 1.)


def _gap(model, q):
    from ngvi_lit.updates import predicted_gain
    ex = model.expectations(q)
    return float(predicted_gain(q, ex.grad, ex.hess)), ex


def _peak_mb():
    "Peak resident memory of this process in MB (VmHWM: unlike ru_maxrss it is not inherited across exec)."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_peak_mb(client):
    return client.run(_peak_mb)


def acceptance(quick: bool) -> dict:
    import dask.array as da
    from ngvi_lit.cluster import DaskGLM, fit_dask, local_cluster
    from ngvi_lit.fit import fit
    from ngvi_lit.families import MvNormal
    N, D, rows = (200_000, 20, 25_000) if quick else (10_000_000, 20, 250_000)
    tol = 1e-13        # fit's tol is relative to |ELBO| (~ N/2 here): 1e-10 would stop at a gap of ~1e-10 nats, where two
                       # runs' last steps are picked by ELBO comparisons at the rounding level and differ by ~1e-8
    base = Path(os.environ.get('NGVI_CLUSTER_DATA', tempfile.gettempdir()))
    d = Path(tempfile.mkdtemp(prefix='ngvi_cluster_', dir=base))
    out = dict(N=N, D=D, rows_per_partition=rows, data_dir=str(d), tol=tol)
    clients = {}
    try:
        t = time.perf_counter(); P = _write_stack(d, N, D, rows); out['write_seconds'] = time.perf_counter() - t
        out['partitions'] = P; out['bytes_on_disk'] = int(sum(f.stat().st_size for f in d.rglob('*.npy')))
        print(f'  data: {N} x {D} in {P} partitions, {out["bytes_on_disk"] / 1e9:.2f} GB under {d}', flush=True)
        single = _single_model(d, N, D, P)
        # both full runs start from the same q0 (mean 0, precision N/4 I: about the posterior's scale), so they take the
        # same path and differ only by the order of the sums
        q0 = MvNormal.from_precision(np.zeros(D), np.eye(D) * N / 4)
        out['q0'] = 'mean 0, precision N/4 I (both full runs)'
        t = time.perf_counter(); r1 = fit(single, rng=np.random.default_rng(0), q0=q0, max_iter=50, tol=tol); ts = time.perf_counter() - t
        gap1, _ = _gap(single, r1.q)
        out['single'] = dict(status=r1.status, message=r1.message, nit=r1.nit, seconds=ts, gap_nats=gap1, elbo=r1.elbo,
                             iter_seconds=np.diff(np.concatenate([[0.], r1.history['time']])).tolist(), peak_rss_mb=_peak_mb(),
                             history={k: r1.history[k].tolist() for k in ('elbo', 'rho', 'kl_step', 'n_rejected', 'grad_norm')})
        print(f'  single process: {r1.status} in {r1.nit} iterations, {ts:.0f} s, gap {gap1:.1e}', flush=True)
        mk = lambda c: DaskGLM(da.from_npy_stack(str(d / 'X'), mmap_mode='r'), da.from_npy_stack(str(d / 'y'), mmap_mode='r'),
                               1., 'logistic', client=c)
        clients[2] = local_cluster(2, 1)
        m2 = mk(clients[2])
        t = time.perf_counter(); r2 = fit_dask(m2, rng=np.random.default_rng(0), q0=q0, max_iter=50, tol=tol); td = time.perf_counter() - t
        gap2, _ = _gap(m2, r2.q)
        rel_m = float(np.max(np.abs(r2.q.mean - r1.q.mean)) / np.max(np.abs(r1.q.mean)))
        rel_c = float(np.max(np.abs(r2.q.cov - r1.q.cov)) / np.max(np.abs(r1.q.cov)))
        out['dask_2w'] = dict(status=r2.status, message=r2.message, nit=r2.nit, seconds=td, gap_nats=gap2, elbo=r2.elbo,
                              rel_diff_mean=rel_m, rel_diff_cov=rel_c, passes=r2.cluster['passes'],
                              iter_seconds=np.diff(np.concatenate([[0.], r2.history['time']])).tolist(),
                              history={k: r2.history[k].tolist() for k in ('elbo', 'rho', 'kl_step', 'n_rejected', 'grad_norm')})
        print(f'  2 workers: {r2.status} in {r2.nit} iterations, {td:.0f} s, gap {gap2:.1e}, '
              f'rel diff mean {rel_m:.1e} cov {rel_c:.1e}', flush=True)
        clients[1] = local_cluster(1, 1)
        m1 = mk(clients[1])
        # time per pass at the optimum (the regime of all but the first iterations), interleaved rounds so that the three
        # configurations see the same load of this shared machine; time per iteration = pass time x passes per iteration
        runs = {'single': lambda: single.expectations(r1.q), '1 worker': lambda: m1.expectations(r1.q),
                '2 workers': lambda: m2.expectations(r1.q)}
        ts_ = {k: [] for k in runs}
        for _ in range(2 if quick else 4):
            for k, f in runs.items():
                t = time.perf_counter(); f(); ts_[k].append(time.perf_counter() - t)
        ppi = float(np.mean(r2.cluster['passes'][1:])) if r2.nit > 1 else 3.
        out['pass_seconds'] = {k: common.spread(v) for k, v in ts_.items()}
        out['passes_per_iteration'] = ppi
        out['time_per_iteration'] = {k: min(v) * ppi for k, v in ts_.items()}
        tpi = out['time_per_iteration']
        out['speedup_2w_vs_single'] = tpi['single'] / tpi['2 workers']
        out['speedup_2w_vs_1w'] = tpi['1 worker'] / tpi['2 workers']
        out['worker_peak_rss_mb'] = {f'{nw} worker(s)': _worker_peak_mb(c) for nw, c in clients.items()}
        print(f'  time per iteration (s, min of interleaved rounds x {ppi:.1f} passes): ' +
              ', '.join(f'{k} {v:.2f}' for k, v in tpi.items()) +
              f'; worker peak RSS {max(v for w in out["worker_peak_rss_mb"].values() for v in w.values()):.0f} MB', flush=True)
    finally:
        for c in clients.values(): c.close(); c.cluster.close()
        shutil.rmtree(d, ignore_errors=True)
    return out


def _figures(res):
    fig, ax = common.new_figure(figsize=(7, 3))
    keys = list(res['throughput'])
    x = np.arange(len(keys))
    ax.bar(x - .2, [res['throughput'][k]['us_per_row_old'] for k in keys], .4, label='before')
    ax.bar(x + .2, [res['throughput'][k]['us_per_row_new'] for k in keys], .4, label='after')
    ax.set_yscale('log'); ax.set_xticks(x); ax.set_xticklabels(keys, rotation=60, ha='right', fontsize=7)
    ax.set_ylabel('µs per row (1 core)'); ax.legend(fontsize=8)
    common.save_figure(fig, 'cluster_throughput')


def run(quick: bool = False) -> dict:
    res = dict(quick=quick)
    print('[cluster] throughput of the exact expectations (one core):', flush=True)
    res['throughput'] = throughput(quick)
    res['whole_pass'] = whole_pass(quick)
    _figures(res)
    print('[cluster] acceptance run:', flush=True)
    res['acceptance'] = acceptance(quick)
    return res


def _summary(res) -> str:
    a = res['acceptance']
    return (f"throughput ratios: " + ', '.join(f"{k} x{v['ratio']:.1f}" for k, v in res['throughput'].items()) +
            f"\nN={a['N']}: time per iteration {a['time_per_iteration']}, 2 workers vs single x{a['speedup_2w_vs_single']:.2f}")


if __name__ == '__main__':
    sys.exit(common.script_main('cluster', run, _summary, __doc__))
