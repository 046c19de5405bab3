"""Benchmark of the amortised-inference chapter (nbs/22_amortised.ipynb): amortisation and approximation gaps of a
VAE on held-out data, natural-gradient refinement (k = 1, 2, 5, 10, 50 steps) against Adam refinement with a tuned
learning rate, the importance-weighted log p(x) against quadrature (2-D latent), and semi-amortised vs plain training
at the same budget of decoder gradient evaluations.

Usage: python bench/bench_amortised.py [--quick]
Writes bench/results/amortised.json (amortised_quick.json with --quick). A bench runner can `import bench_amortised`
and call `run(quick)`.
"""
from __future__ import annotations
import argparse, json, os, platform, sys, time
from pathlib import Path

for _var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import numpy as np

from ngvi_lit.amortised import (VAE, train_vae, ngvi_refine, adam_refine, elbo_estimate, iw_logml, quad_logml,
                                generated_set, binarise_digits)

KS = (1, 2, 5, 10, 50)
ADAM_KS = (1, 2, 5, 10, 20, 50, 100, 200)
ADAM_LRS = (0.003, 0.01, 0.03, 0.1)


def _enc_q(vae, theta, X):
    M, C = vae.encode(theta, X)
    Ci = np.linalg.inv(C)
    return M, Ci.transpose(0, 2, 1) @ Ci


def _closure(e0, ek, eb, rng, n_boot=400):
    "Fraction of the mean amortisation gap closed, mean(ek - e0) / mean(eb - e0), with a bootstrap s.e. over data points."
    a, b = ek - e0, eb - e0
    idx = rng.integers(0, len(a), (n_boot, len(a)))
    boots = a[idx].mean(1) / b[idx].mean(1)
    return float(a.mean() / b.mean()), float(boots.std(ddof=1))


def _ms(x):
    "Per-datum mean and standard error."
    x = np.asarray(x, float)
    return dict(mean=float(x.mean()), se=float(x.std(ddof=1) / np.sqrt(x.size)))


def _first_k(curve: dict, target=0.9):
    ks = [int(k) for k, v in curve.items() if v[0] >= target]
    return min(ks) if ks else None


def gaps(vae, theta, Xh, seed, best_steps, best_samples, quad=False, quick=False) -> dict:
    "The gap study on held-out rows `Xh` for a trained VAE."
    t0 = time.perf_counter()
    M0, P0 = _enc_q(vae, theta, Xh)
    ev = lambda M, P: elbo_estimate(vae, theta, Xh, M, P, np.random.default_rng(seed + 1), 2000)   # common draws
    e0, se0 = ev(M0, P0)
    t = time.perf_counter()
    r = ngvi_refine(vae, theta, Xh, M0, P0, max(KS), np.random.default_rng(seed + 2), 32, record=KS)
    t_ngvi = time.perf_counter() - t
    rb = ngvi_refine(vae, theta, Xh, r.M, r.P, best_steps, np.random.default_rng(seed + 3), best_samples)
    eb, seb = ev(rb.M, rb.P)
    e50 = ev(*r.record[50])[0]
    better = e50 > eb                                  # the best Gaussian: the better of the two long runs
    eb = np.where(better, e50, eb)
    Mb = np.where(better[:, None], r.record[50][0], rb.M); Pb = np.where(better[:, None, None], r.record[50][1], rb.P)
    brng = np.random.default_rng(seed + 4)
    ek = {k: ev(*r.record[k])[0] for k in KS}
    ngvi_curve = {k: _closure(e0, ek[k], eb, brng) for k in KS}
    iw = iw_logml(vae, theta, Xh, Mb, Pb, np.random.default_rng(seed + 5), K=5000)
    out = dict(n_heldout=len(Xh), d_z=vae.d_z, encoder_elbo=_ms(e0), best_elbo=_ms(eb), iw_logml=_ms(iw.logml),
               iw_se_mean=float(iw.se.mean()), ess_median=float(np.median(iw.ess)), ess_min=float(iw.ess.min()),
               ess_q10=float(np.quantile(iw.ess, .1)), K=5000,
               amortisation_gap=_ms(eb - e0), approximation_gap=_ms(iw.logml - eb),
               ngvi_elbo={k: _ms(ek[k]) for k in KS}, ngvi_closure={k: list(v) for k, v in ngvi_curve.items()},
               ngvi_steps_to_90=_first_k(ngvi_curve), ngvi_seconds_50_steps=t_ngvi,
               ngvi_cost={k: dict(evals_per_point=r.cost[k][0], seconds=r.cost[k][1]) for k in KS},
               ngvi_evals_per_point_50_steps=float(r.n_evals.mean()),
               best=dict(steps=f'50 x 32 draws, then {best_steps} x {best_samples} draws (the better of the two per point)'))
    # Adam on (m, C): learning rates swept on these same points (favours Adam), steps for the same closure
    adam = {}
    for lr in ADAM_LRS:
        ra = adam_refine(vae, theta, Xh, M0, P0, max(ADAM_KS), np.random.default_rng(seed + 2), lr=lr, n_samples=32, record=ADAM_KS)
        curve = {k: _closure(e0, ev(*ra.record[k])[0], eb, brng) for k in ADAM_KS}
        adam[lr] = dict(closure={k: list(v) for k, v in curve.items()}, steps_to_90=_first_k(curve),
                        cost={k: dict(evals_per_point=ra.cost[k][0], seconds=ra.cost[k][1]) for k in ADAM_KS})
    score = lambda lr: (adam[lr]['steps_to_90'] or 10**9, -adam[lr]['closure'][max(ADAM_KS)][0])
    lr_best = min(ADAM_LRS, key=score)
    out.update(adam=adam, adam_lr_tuned=lr_best, adam_steps_to_90=adam[lr_best]['steps_to_90'])
    if quad:
        nq = min(len(Xh), 20 if quick else 100)
        qd = quad_logml(vae, theta, Xh[:nq], Mb[:nq], Pb[:nq])
        z = (iw.logml[:nq] - qd) / iw.se[:nq]
        out.update(quadrature=dict(n=nq, logml=_ms(qd), iw_minus_quad=_ms(iw.logml[:nq] - qd), z_mean=float(z.mean()),
                                   z_sd=float(z.std(ddof=1)), z_abs_max=float(np.abs(z).max()),
                                   frac_within_1se=float(np.mean(np.abs(z) <= 1)), frac_within_2se=float(np.mean(np.abs(z) <= 2)),
                                   approximation_gap_quad=_ms(qd - eb[:nq])))
    out['seconds'] = time.perf_counter() - t0
    return out


def heldout_loglik(vae, theta, Xh, seed):
    "Held-out log p(x) per point: encoder q refined by 20 NGVI steps, then importance sampling (K = 5000)."
    M0, P0 = _enc_q(vae, theta, Xh)
    r = ngvi_refine(vae, theta, Xh, M0, P0, 20, np.random.default_rng(seed), 32)
    iw = iw_logml(vae, theta, Xh, r.M, r.P, np.random.default_rng(seed + 1), K=5000)
    e0 = elbo_estimate(vae, theta, Xh, M0, P0, np.random.default_rng(seed + 2), 500)[0]
    return iw.logml, e0


def semi_amortised(Xtr, Xh, seed, sa_iters, K=3, S=8) -> dict:
    "Plain vs semi-amortised training from the same start with the same budget of decoder gradient evaluations."
    vae = VAE(Xtr.shape[1], 4, 64)
    th0 = vae.init(np.random.default_rng(seed))
    t = time.perf_counter()
    sa = train_vae(vae, Xtr, np.random.default_rng(seed + 1), theta0=th0, budget=10**12, max_iter=sa_iters,
                   refine_steps=K, refine_samples=S)
    t_sa = time.perf_counter() - t
    budget = int(sa.evals[-1])
    t = time.perf_counter()
    pl = train_vae(vae, Xtr, np.random.default_rng(seed + 1), theta0=th0, budget=budget)
    t_pl = time.perf_counter() - t
    pl_it = train_vae(vae, Xtr, np.random.default_rng(seed + 1), theta0=th0, budget=10**12, max_iter=sa_iters)
    ll = {}
    for name, res in (('semi_amortised', sa), ('plain_same_budget', pl), ('plain_same_iterations', pl_it)):
        lm, e0 = heldout_loglik(vae, res.theta, Xh, seed + 10)
        ll[name] = dict(iterations=int(res.n_iter), evals=int(res.evals[-1]), heldout_iw_logml=_ms(lm),
                        heldout_encoder_elbo=_ms(e0), _lm=lm)
    diff = lambda a, b: _ms(ll[a]['_lm'] - ll[b]['_lm'])
    out = dict(refine_steps=K, refine_samples=S, budget_evals=budget, seconds_sa=t_sa, seconds_plain=t_pl,
               sa_minus_plain_same_budget=diff('semi_amortised', 'plain_same_budget'),
               sa_minus_plain_same_iterations=diff('semi_amortised', 'plain_same_iterations'))
    for v in ll.values(): v.pop('_lm')
    out.update(ll)
    return out


def run(quick: bool = False) -> dict:
    "Run the study; return a JSON-serialisable dict."
    t0 = time.perf_counter()
    res = dict(settings=dict(quick=quick, machine=platform.machine(), python=platform.python_version(), numpy=np.__version__,
                             threads=os.environ.get('OPENBLAS_NUM_THREADS')))
    # generated set: known decoder, 2-D latent
    X, _, _, _ = generated_set(np.random.default_rng(11), n=3000)
    Xtr, Xte = X[:2000], X[2000:]
    vae = VAE(24, 2, 32)
    tr = train_vae(vae, Xtr, np.random.default_rng(12), budget=64 * (1500 if quick else 8000))
    nh = 40 if quick else 300
    g = gaps(vae, tr.theta, Xte[:nh], 100, 40 if quick else 100, 128, quad=True, quick=quick)
    g['train'] = dict(iterations=tr.n_iter, final_train_elbo=float(tr.elbo[-200:].mean()))
    res['generated'] = g
    # digits: binarised at 8 of 16
    Xd = binarise_digits(8.)
    perm = np.random.default_rng(0).permutation(len(Xd))
    Dtr, Dte = Xd[perm[:1400]], Xd[perm[1400:]]
    vae = VAE(64, 4, 64)
    tr = train_vae(vae, Dtr, np.random.default_rng(13), budget=64 * (1500 if quick else 10000))
    g = gaps(vae, tr.theta, Dte[:40] if quick else Dte, 200, 30 if quick else 60, 128)
    g['train'] = dict(iterations=tr.n_iter, final_train_elbo=float(tr.elbo[-200:].mean()))
    res['digits'] = g
    res['semi_amortised'] = semi_amortised(Dtr, Dte[:40] if quick else Dte, 300, 100 if quick else 1500)
    if not quick: res['semi_amortised_seed2'] = semi_amortised(Dtr, Dte, 400, 1500)
    d, s = res['digits'], res['semi_amortised']
    res['acceptance'] = dict(
        ngvi_closure_at_5_digits=d['ngvi_closure'][5], ngvi_closure_at_5_generated=res['generated']['ngvi_closure'][5],
        ngvi_closes_90pct_in_5_steps=bool(d['ngvi_closure'][5][0] >= .9 and res['generated']['ngvi_closure'][5][0] >= .9),
        adam_steps_to_90_digits=d['adam_steps_to_90'], adam_lr_digits=d['adam_lr_tuned'],
        adam_steps_to_90_generated=res['generated']['adam_steps_to_90'], adam_lr_generated=res['generated']['adam_lr_tuned'],
        iw_vs_quad=res['generated']['quadrature'], sa_minus_plain_same_budget=s['sa_minus_plain_same_budget'])
    res['seconds'] = time.perf_counter() - t0
    return res


def _jsonable(o):
    if isinstance(o, dict): return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)): return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)): return o.item()
    return o


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true')
    a = ap.parse_args(argv)
    res = _jsonable(run(a.quick))
    out = Path(__file__).resolve().parent / 'results' / ('amortised_quick.json' if a.quick else 'amortised.json')
    out.write_text(json.dumps(res, indent=1) + '\n')
    print(json.dumps(res['acceptance'], indent=1)); print('wrote', out, f"in {res['seconds']:.0f} s")


if __name__ == '__main__':
    main()
