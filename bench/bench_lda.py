"""LDA head to head: ngvi_lit.lda (the engine's fit + LDASVI) against scikit-learn's LatentDirichletAllocation,
batch VB and online SVI, on identical corpora, hyperparameters and starting topics; and the engine's remedy.

Corpora: a generated one (known topics: synthetic_lda, K = 5, V = 300) and the shipped docstring corpus
(ngvi_lit.lda.load_docstrings: 6551 docstrings of numpy/scipy/scikit-learn/pandas, V = 3000, K = 20).
Both implementations get the same K, alpha = eta = 1/K, tau0 (sklearn learning_offset), kappa (learning_decay),
batch size, vocabulary, per-document tolerance (1e-3, 100 sweeps) and the same starting lambda (sklearn's
components_ is set to it after _init_latent_vars). Runs per start:
  ours_online     fit_lda(..., 'online'): the same-settings run (reshuffled batches every pass, gamma_d started at 1)
  sk_online       stock: one partial_fit(X_train) per pass (its batches in one fixed order, gamma_d started at random)
  sk_online_same  controlled: sklearn fed exactly our batches, one partial_fit each, gamma_d started at 1
  ours_remedy     fit_lda(..., grow=2): the batch doubles every pass up to the corpus, batch-share step (ends as batch VB)
  ours_batch      batch VB (rho = 1 on the corpus), batch_passes passes
  sk_batch        one _em_step(batch_update=True) per pass (what its fit does per iteration), sk_batch_passes passes
The sklearn runs use the first `seeds` starts; ours use `seeds_gap` starts (the gap to batch VB varies a lot
from start to start, so it is reported as mean +- standard error over more starts; figure and table: first `seeds`).
All runs are scored by ONE estimator, ngvi_lit.lda.perplexity (document completion on held-out documents);
timings exclude that evaluation. BLAS on one thread; sklearn n_jobs=None (one process).

Usage: python bench/bench_lda.py [--quick]   (writes bench/results/lda.json and lda_headtohead.png, ~9 min)
       python bench/bench_lda.py --gap-starts 10:40   (then: 30 more starts of ours only for the gap to batch VB on
       the docstrings, merged into lda.json['gap_study'], ~12 min)
"""
from __future__ import annotations
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (sets the BLAS thread count before numpy loads)
import numpy as np  # noqa: E402
from ngvi_lit.lda import (completion_split, fit_lda, init_topics, load_docstrings, match_topics, perplexity,  # noqa: E402
                          synthetic_lda, expected_log_beta)


def corpora(quick: bool) -> dict:
    out = {}
    Xg, beta, _ = synthetic_lda(np.random.default_rng(0), n_docs=7000, V=300, K=5, doc_len=100)
    out['synthetic'] = dict(X=Xg[:6000], test=completion_split(Xg[6000:], np.random.default_rng(1)), beta=beta,
                            K=5, batch_size=128, tau0=10., kappa=0.7, batch_passes=10 if quick else 30, sk_batch_passes=10,
                            desc='generated: 6000 train / 1000 test docs of ~100 tokens, K=5 true topics, V=300')
    c = load_docstrings(); rng = np.random.default_rng(1); perm = rng.permutation(c.X.shape[0])
    Xtr = c.X[perm[1000:]]
    out['docstrings'] = dict(X=Xtr[:1500] if quick else Xtr, test=completion_split(c.X[perm[:1000]], rng), beta=None,
                             K=20, batch_size=256, tau0=64., kappa=0.7, batch_passes=5 if quick else 30, sk_batch_passes=5 if quick else 10,
                             desc=f'docstrings of {", ".join(c.meta["packages"])}: {Xtr.shape[0]} train / 1000 test docs, V=3000')
    return out


def _sk(X, K, lam0, method, batch_size, tau0, kappa):
    from sklearn.decomposition import LatentDirichletAllocation
    lda = LatentDirichletAllocation(n_components=K, doc_topic_prior=1 / K, topic_word_prior=1 / K, learning_method=method,
                                    learning_decay=kappa, learning_offset=tau0, batch_size=batch_size, total_samples=X.shape[0],
                                    max_doc_update_iter=100, mean_change_tol=1e-3, random_state=0)
    lda._init_latent_vars(X.shape[1])
    lda.components_ = lam0.copy(); lda.exp_dirichlet_component_ = np.exp(expected_log_beta(lam0))
    return lda


def sk_run(X, test, K, lam0, method, passes, batch_size, tau0, kappa, same_batches=None):
    """scikit-learn's LatentDirichletAllocation from lam0, perplexity (our estimator) and fit time after each pass.
    same_batches=None: stock (online: one partial_fit(X) per pass, its batches in one fixed order; gamma_d started at
    Gamma(100, 1/100) draws). same_batches=seed: the controlled run, fed the batches our fit drew from that data seed
    (epoch e shuffled by default_rng([seed, e])) one partial_fit each, and gamma_d started at 1 as ours."""
    lda = _sk(X, K, lam0, method, batch_size, tau0, kappa)
    if same_batches is not None:
        e_step = lda._e_step
        lda._e_step = lambda X, cal_sstats, random_init, parallel=None: e_step(X, cal_sstats, False, parallel)
    ppl, t = [perplexity(lam0, 1 / K, *test)], [0.0]
    for e in range(passes):
        t0 = time.perf_counter()
        if method != 'online': lda._em_step(X, total_samples=X.shape[0], batch_update=True)
        elif same_batches is None: lda.partial_fit(X)
        else:
            order = np.random.default_rng([same_batches, e]).permutation(X.shape[0])
            for a in range(0, X.shape[0], batch_size): lda.partial_fit(X[np.sort(order[a:a + batch_size])])
        t.append(t[-1] + time.perf_counter() - t0)
        ppl.append(perplexity(lda.components_, 1 / K, *test))
    return np.array(ppl), np.array(t), lda.components_


def mean_se(a) -> tuple:
    "Mean and standard error over starts (axis 0)."
    a = np.asarray(a, float)
    return a.mean(0), a.std(0, ddof=1) / np.sqrt(a.shape[0])


def run(quick: bool = False) -> dict:
    import sklearn
    t_start = time.perf_counter()
    n_full, n_gap = (1, 2) if quick else (5, 10)
    res = dict(sklearn=sklearn.__version__, corpora={}, seeds=n_full, seeds_gap=n_gap, grow=GROW)
    for name, c in corpora(quick).items():
        K, X, test = c['K'], c['X'], c['test']
        kw = dict(batch_size=c['batch_size'], tau0=c['tau0'], kappa=c['kappa'])
        runs = {k: [] for k in LABEL}
        for s in range(n_gap):
            lam0 = init_topics(K, X.shape[1], np.random.default_rng(100 + s)).alpha
            r = fit_lda(X, K, np.random.default_rng(200 + s), 'online', passes=10, test=test, q0=lam0, **kw)
            runs['ours_online'].append(dict(ppl=r.perplexity, time=r.fit_time, lam=r.lam))
            r2 = fit_lda(X, K, np.random.default_rng(200 + s), 'online', passes=10, test=test, q0=lam0, grow=GROW, **kw)
            runs['ours_remedy'].append(dict(ppl=r2.perplexity, time=r2.fit_time, lam=r2.lam))
            rb = fit_lda(X, K, np.random.default_rng(0), 'batch', passes=c['batch_passes'], test=test, q0=lam0)
            runs['ours_batch'].append(dict(ppl=rb.perplexity, time=rb.fit_time, lam=rb.lam))
            if s < n_full:
                for k, m, p, same in (('sk_online', 'online', 10, None), ('sk_online_same', 'online', 10, r.data_seed),
                                      ('sk_batch', 'batch', c['sk_batch_passes'], None)):
                    pp, t, lam = sk_run(X, test, K, lam0, m, p, same_batches=same, **kw)
                    runs[k].append(dict(ppl=pp, time=t, lam=lam))
            print(f'  [{name}] start {s}: online {r.perplexity[-1]:.2f}, remedy {r2.perplexity[-1]:.2f}, batch VB {rb.perplexity[-1]:.2f}'
                  + (f', sklearn online {runs["sk_online"][-1]["ppl"][-1]:.2f} (same batches {runs["sk_online_same"][-1]["ppl"][-1]:.2f})'
                     if s < n_full else ''), f'[{time.perf_counter() - t_start:.0f} s]', flush=True)
        out = dict(desc=c['desc'], K=K, alpha=1 / K, eta=1 / K, n_train=X.shape[0], V=X.shape[1], batch_passes=c['batch_passes'],
                   sk_batch_passes=c['sk_batch_passes'], **kw)
        for k, rs in runs.items():
            P = np.array([r['ppl'] for r in rs]); T = np.array([r['time'] for r in rs])
            out[k] = dict(perplexity_mean=P[:n_full].mean(0), perplexity_runs=P, time_mean=T[:n_full].mean(0),
                          seconds_per_pass=float(np.median(np.diff(T[:n_full], axis=1))), n_starts=len(rs))
            if c['beta'] is not None:
                out[k]['hellinger_max'] = [float(match_topics(c['beta'], r['lam'])[1].max()) for r in rs]
        ref = out['ours_batch']['perplexity_runs'][:, -1]          # batch VB after batch_passes, per start (all n_gap starts)
        acc = dict(batch_vb_final=ref)
        for k in ('ours_online', 'ours_remedy'):
            fin = out[k]['perplexity_runs'][:, -1]; gap = fin / ref - 1; m, se = mean_se(gap)
            acc[k] = dict(final=fin, gap_to_batch=gap, gap_mean=float(m), gap_se=float(se),
                          gap_of_means=float(fin.mean() / ref.mean() - 1), within_half_percent=bool(m <= 0.005))
        on, sk, sks = (out[k]['perplexity_runs'][:n_full] for k in ('ours_online', 'sk_online', 'sk_online_same'))
        rem = out['ours_remedy']['perplexity_runs'][:n_full]
        d_m, d_se = mean_se(on - sk); r_m, r_se = mean_se(rem - sk)
        acc.update(
            ours_minus_sk_online=d_m, ours_minus_sk_online_se=d_se,
            ours_le_sk_online_every_pass=bool(np.all(d_m[1:] <= 0)),
            ours_not_worse_2se_every_pass=bool(np.all(d_m[1:] <= 2 * d_se[1:])),
            ours_minus_sk_same_batches_maxabs=np.abs(on - sks).max(0),
            remedy_minus_sk_online=r_m, remedy_minus_sk_online_se=r_se,
            remedy_le_sk_online_every_pass=bool(np.all(r_m[1:] <= 0)),
            remedy_minus_online=dict(zip(('mean', 'se'), mean_se(out['ours_remedy']['perplexity_runs'] - out['ours_online']['perplexity_runs']))),
            time_ratio_online=out['ours_online']['seconds_per_pass'] / out['sk_online']['seconds_per_pass'],
            time_ratio_batch=out['ours_batch']['seconds_per_pass'] / out['sk_batch']['seconds_per_pass'],
            time_remedy_10_passes=float(out['ours_remedy']['time_mean'][-1]), time_online_10_passes=float(out['ours_online']['time_mean'][-1]))
        out['acceptance'] = acc
        res['corpora'][name] = out
    res['table'] = table(res)
    res['figures'] = [str(plot(res))]
    res['wall_seconds'] = time.perf_counter() - t_start
    return res


GROW = 2.0   # the engine's remedy: batch doubled every pass up to the whole corpus, with the batch-share step (fit_lda(grow=2))
LABEL = dict(ours_online='ngvi_lit online', sk_online='sklearn online', sk_online_same='sklearn online, our batches',
             ours_remedy='ngvi_lit + remedy', ours_batch='ngvi_lit batch VB', sk_batch='sklearn batch VB')


def table(res) -> list:
    rows = []
    for name, c in res['corpora'].items():
        for k in LABEL:
            p = c[k]['perplexity_mean']
            rows.append(dict(corpus=name, method=LABEL[k], ppl_pass1=float(p[1]), ppl_pass5=float(p[min(5, len(p) - 1)]),
                             ppl_pass10=float(p[min(10, len(p) - 1)]), ppl_final=float(p[-1]), passes=len(p) - 1,
                             s_per_pass=c[k]['seconds_per_pass'], hellinger_max=max(c[k].get('hellinger_max', [np.nan]))))
    return rows


def plot(res):
    fig, axes = common.new_figure(len(res['corpora']), 2, figsize=(10, 3.4 * len(res['corpora'])), squeeze=False)
    style = dict(ours_online=('C0', '-'), sk_online=('C1', '-'), ours_remedy=('C2', '-'), ours_batch=('C0', '--'), sk_batch=('C1', '--'))
    for row, (name, c) in zip(axes, res['corpora'].items()):
        lo = min(c[k]['perplexity_mean'][1:].min() for k in style); hi = max(c[k]['perplexity_mean'][2] for k in style)
        for k, (col, ls) in style.items():
            p = c[k]['perplexity_mean']
            row[0].plot(np.arange(len(p))[1:], p[1:], color=col, ls=ls, label=LABEL[k] + (' (grow 2x/pass)' if k == 'ours_remedy' else ''))
            row[1].plot(c[k]['time_mean'][1:], p[1:], color=col, ls=ls, label=LABEL[k])
        for ax, xl in zip(row, ('passes', 'fit time (s)')):
            ax.set_ylim(lo * 0.99, hi * 1.02); ax.set_xlabel(xl); ax.set_ylabel('held-out perplexity'); ax.set_title(name)
        row[0].legend(fontsize=8)
    fig.tight_layout()
    return common.save_figure(fig, 'lda_headtohead')


def summary(res) -> str:
    lines = [f'{"corpus":<11} {"method":<28} {"pass 1":>8} {"pass 5":>8} {"pass 10":>8} {"final":>8} {"passes":>6} {"s/pass":>7}']
    for r in res['table']:
        lines.append(f'{r["corpus"]:<11} {r["method"]:<28} {r["ppl_pass1"]:8.2f} {r["ppl_pass5"]:8.2f} {r["ppl_pass10"]:8.2f} '
                     f'{r["ppl_final"]:8.2f} {r["passes"]:6d} {r["s_per_pass"]:7.3f}')
    for name, c in res['corpora'].items():
        a = c['acceptance']
        for k in ('ours_online', 'ours_remedy'):
            g = a[k]
            lines.append(f'{name}: {LABEL[k]} after 10 passes vs batch VB ({c["batch_passes"]} passes), {len(g["gap_to_batch"])} starts: '
                         f'{100 * g["gap_mean"]:+.2f}% +- {100 * g["gap_se"]:.2f}% (per start {np.round(100 * np.asarray(g["gap_to_batch"]), 1)}%)')
        lines.append(f'{name}: ours - sklearn online per pass (mean +- se, {res["seeds"]} starts): '
                     + ' '.join(f'{m:+.2f}+-{e:.2f}' for m, e in zip(a['ours_minus_sk_online'][1:], a['ours_minus_sk_online_se'][1:])))
        lines.append(f'{name}: remedy - sklearn online per pass: '
                     + ' '.join(f'{m:+.2f}+-{e:.2f}' for m, e in zip(a['remedy_minus_sk_online'][1:], a['remedy_minus_sk_online_se'][1:])))
        lines.append(f'{name}: |ours - sklearn on our batches| max per pass: {np.max(a["ours_minus_sk_same_batches_maxabs"]):.2e}; '
                     f'time ratio online {a["time_ratio_online"]:.2f}, batch {a["time_ratio_batch"]:.2f}; 10 passes: online {a["time_online_10_passes"]:.1f} s, remedy {a["time_remedy_10_passes"]:.1f} s')
    return '\n'.join(lines)


def gap_study(first: int, last: int) -> dict:
    """More starts for the one figure that varies most from start to start: ours online, ours + remedy and batch VB on
    the docstrings, starts first..last-1 (the seeds of run()), final perplexities only; merged with the starts of the
    stored run into lda.json['gap_study'] (the rest of lda.json is left as it is)."""
    import json
    path = common.RESULTS_DIR / 'lda.json'; res = json.loads(path.read_text())
    c = corpora(False)['docstrings']; old = res['corpora']['docstrings']; n0 = len(old['ours_batch']['perplexity_runs'])
    if first != n0: raise SystemExit(f'--gap-starts must continue the stored run: it has starts 0..{n0 - 1}, so start at {n0}')
    K, X, test = c['K'], c['X'], c['test']; kw = dict(batch_size=c['batch_size'], tau0=c['tau0'], kappa=c['kappa'])
    fin = {k: [row[-1] for row in old[k]['perplexity_runs']] for k in ('ours_online', 'ours_remedy', 'ours_batch')}
    t0 = time.perf_counter()
    for s in range(first, last):
        lam0 = init_topics(K, X.shape[1], np.random.default_rng(100 + s)).alpha
        fin['ours_online'].append(perplexity(fit_lda(X, K, np.random.default_rng(200 + s), 'online', passes=10, q0=lam0, **kw).lam, 1 / K, *test))
        fin['ours_remedy'].append(perplexity(fit_lda(X, K, np.random.default_rng(200 + s), 'online', passes=10, q0=lam0, grow=GROW, **kw).lam, 1 / K, *test))
        fin['ours_batch'].append(perplexity(fit_lda(X, K, np.random.default_rng(0), 'batch', passes=c['batch_passes'], q0=lam0).lam, 1 / K, *test))
        print(f'  [gap] start {s}: online {fin["ours_online"][-1]:.2f}, remedy {fin["ours_remedy"][-1]:.2f}, '
              f'batch VB {fin["ours_batch"][-1]:.2f} [{time.perf_counter() - t0:.0f} s]', flush=True)
    ref = np.array(fin['ours_batch']); out = dict(starts=last, batch_passes=c['batch_passes'], final=fin, wall_seconds=time.perf_counter() - t0)
    for k in ('ours_online', 'ours_remedy'):
        g = np.array(fin[k]) / ref - 1; m, se = mean_se(g)
        out[k] = dict(gap_mean=float(m), gap_se=float(se), gap_of_means=float(np.mean(fin[k]) / ref.mean() - 1), within_half_percent=bool(m <= 0.005))
    d = np.array(fin['ours_remedy']) - np.array(fin['ours_online']); out['remedy_minus_online'] = dict(zip(('mean', 'se'), map(float, mean_se(d))))
    res['gap_study'] = out
    common.write_json('lda', res)
    for k in ('ours_online', 'ours_remedy'):
        print(f'docstrings, {last} starts: {LABEL[k]} after 10 passes vs batch VB ({c["batch_passes"]} passes): '
              f'{100 * out[k]["gap_mean"]:+.2f}% +- {100 * out[k]["gap_se"]:.2f}%')
    return res


def main(argv=None) -> int:
    """`--gap-starts A:B` runs gap_study(A, B) on top of the stored run; anything else goes to common.script_main."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if '--gap-starts' in argv:
        a, b = map(int, argv[argv.index('--gap-starts') + 1].split(':'))
        gap_study(a, b)
        return 0
    return common.script_main('lda', run, summary, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
