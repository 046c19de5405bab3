"""LDA head to head: ngvi_lit.lda (the engine's fit + LDASVI) against scikit-learn's LatentDirichletAllocation,
batch VB and online SVI, on identical corpora, hyperparameters and starting topics.

Corpora: a generated one (known topics: synthetic_lda, K = 5, V = 300) and the shipped docstring corpus
(ngvi_lit.lda.load_docstrings: 6551 docstrings of numpy/scipy/scikit-learn/pandas, V = 3000, K = 20).
Both implementations get the same K, alpha = eta = 1/K, tau0 (sklearn learning_offset), kappa (learning_decay),
batch size, vocabulary, per-document tolerance (1e-3, 100 sweeps) and the same starting lambda (sklearn's
components_ is set to it after _init_latent_vars). sklearn online: one partial_fit(X_train) per pass (its batches
in order, as fit does); sklearn batch: one _em_step(batch_update=True) per pass (what fit does per iteration).
Both are scored by ONE estimator, ngvi_lit.lda.perplexity (document completion on held-out documents), applied
to each fitted lambda; timings exclude that evaluation. BLAS on one thread; sklearn n_jobs=None (one process).

Usage: python bench/bench_lda.py [--quick]   (writes bench/results/lda.json and lda_headtohead.png)
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
                            K=5, batch_size=128, tau0=10., kappa=0.7, batch_passes=10 if quick else 30,
                            desc='generated: 6000 train / 1000 test docs of ~100 tokens, K=5 true topics, V=300')
    c = load_docstrings(); rng = np.random.default_rng(1); perm = rng.permutation(c.X.shape[0])
    Xtr = c.X[perm[1000:]]
    out['docstrings'] = dict(X=Xtr[:1500] if quick else Xtr, test=completion_split(c.X[perm[:1000]], rng), beta=None,
                             K=20, batch_size=256, tau0=64., kappa=0.7, batch_passes=5 if quick else 30,
                             desc=f'docstrings of {", ".join(c.meta["packages"])}: {Xtr.shape[0]} train / 1000 test docs, V=3000')
    return out


def sk_run(X, test, K, lam0, method, passes, batch_size, tau0, kappa):
    "scikit-learn's LatentDirichletAllocation from lam0, perplexity (our estimator) and fit time after each pass."
    from sklearn.decomposition import LatentDirichletAllocation
    lda = LatentDirichletAllocation(n_components=K, doc_topic_prior=1 / K, topic_word_prior=1 / K, learning_method=method,
                                    learning_decay=kappa, learning_offset=tau0, batch_size=batch_size, total_samples=X.shape[0],
                                    max_doc_update_iter=100, mean_change_tol=1e-3, random_state=0)
    lda._init_latent_vars(X.shape[1])
    lda.components_ = lam0.copy(); lda.exp_dirichlet_component_ = np.exp(expected_log_beta(lam0))
    ppl, t = [perplexity(lam0, 1 / K, *test)], [0.0]
    for _ in range(passes):
        t0 = time.perf_counter()
        if method == 'online': lda.partial_fit(X)
        else: lda._em_step(X, total_samples=X.shape[0], batch_update=True)
        t.append(t[-1] + time.perf_counter() - t0)
        ppl.append(perplexity(lda.components_, 1 / K, *test))
    return np.array(ppl), np.array(t), lda.components_


def run(quick: bool = False) -> dict:
    import sklearn
    t_start = time.perf_counter()
    res = dict(sklearn=sklearn.__version__, corpora={}, seeds=1 if quick else 5)
    for name, c in corpora(quick).items():
        K, X, test = c['K'], c['X'], c['test']
        kw = dict(batch_size=c['batch_size'], tau0=c['tau0'], kappa=c['kappa'])
        runs = {k: [] for k in ('ours_online', 'sk_online', 'ours_batch', 'sk_batch')}
        for s in range(res['seeds']):
            lam0 = init_topics(K, X.shape[1], np.random.default_rng(100 + s)).alpha
            r = fit_lda(X, K, np.random.default_rng(200 + s), 'online', passes=10, test=test, q0=lam0, **kw)
            runs['ours_online'].append(dict(ppl=r.perplexity, time=r.fit_time, lam=r.lam))
            p, t, lam = sk_run(X, test, K, lam0, 'online', 10, **kw)
            runs['sk_online'].append(dict(ppl=p, time=t, lam=lam))
            if True:              # batch VB from the same start (it has local optima too)
                r = fit_lda(X, K, np.random.default_rng(0), 'batch', passes=c['batch_passes'], test=test, q0=lam0)
                runs['ours_batch'].append(dict(ppl=r.perplexity, time=r.fit_time, lam=r.lam))
                p, t, lam = sk_run(X, test, K, lam0, 'batch', c['batch_passes'], **kw)
                runs['sk_batch'].append(dict(ppl=p, time=t, lam=lam))
            print(f'  [{name}] seed {s}: ours online {runs["ours_online"][-1]["ppl"][-1]:.2f}, sklearn online {runs["sk_online"][-1]["ppl"][-1]:.2f}', flush=True)
        out = dict(desc=c['desc'], K=K, alpha=1 / K, eta=1 / K, n_train=X.shape[0], V=X.shape[1], batch_passes=c['batch_passes'], **kw)
        for k, rs in runs.items():
            P = np.array([r['ppl'] for r in rs]); T = np.array([r['time'] for r in rs])
            out[k] = dict(perplexity_mean=P.mean(0), perplexity_runs=P, time_mean=T.mean(0),
                          seconds_per_pass=float(np.median(np.diff(T, axis=1))))
            if c['beta'] is not None:
                out[k]['hellinger_max'] = [float(match_topics(c['beta'], r['lam'])[1].max()) for r in rs]
        ref = out['ours_batch']['perplexity_runs'][:, -1]          # per start
        on = out['ours_online']['perplexity_runs']
        out['acceptance'] = dict(
            batch_vb_final=ref, online_final=on[:, -1],
            online_gap_to_batch=on[:, -1] / ref - 1,
            online_within_half_percent=bool(np.all(on[:, -1] <= 1.005 * ref)), online_within_half_percent_of_best_batch=bool(np.all(on[:, -1] <= 1.005 * ref.min())),
            first_pass_within_half_percent=[int(np.argmax(row <= 1.005 * b)) if np.any(row <= 1.005 * b) else None for row, b in zip(on, ref)],
            ours_minus_sk_online_per_pass=out['ours_online']['perplexity_mean'] - out['sk_online']['perplexity_mean'],
            ours_le_sk_online_every_pass=bool(np.all(out['ours_online']['perplexity_mean'][1:] <= out['sk_online']['perplexity_mean'][1:])),
            ours_le_sk_online_every_pass_every_seed=bool(np.all(on[:, 1:] <= out['sk_online']['perplexity_runs'][:, 1:])),
            time_ratio_online=out['ours_online']['seconds_per_pass'] / out['sk_online']['seconds_per_pass'],
            time_ratio_batch=out['ours_batch']['seconds_per_pass'] / out['sk_batch']['seconds_per_pass'])
        res['corpora'][name] = out
    res['table'] = table(res)
    res['figures'] = [str(plot(res))]
    res['wall_seconds'] = time.perf_counter() - t_start
    return res


LABEL = dict(ours_online='ngvi_lit online', sk_online='sklearn online', ours_batch='ngvi_lit batch VB', sk_batch='sklearn batch VB')


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
    style = dict(ours_online=('C0', '-'), sk_online=('C1', '-'), ours_batch=('C0', '--'), sk_batch=('C1', '--'))
    for row, (name, c) in zip(axes, res['corpora'].items()):
        lo = min(c[k]['perplexity_mean'][1:].min() for k in LABEL); hi = max(c[k]['perplexity_mean'][2] for k in LABEL)
        for k, (col, ls) in style.items():
            p = c[k]['perplexity_mean']
            row[0].plot(np.arange(len(p))[1:], p[1:], color=col, ls=ls, label=LABEL[k])
            row[1].plot(c[k]['time_mean'][1:], p[1:], color=col, ls=ls, label=LABEL[k])
        for ax, xl in zip(row, ('passes', 'fit time (s)')):
            ax.set_ylim(lo * 0.99, hi * 1.02); ax.set_xlabel(xl); ax.set_ylabel('held-out perplexity'); ax.set_title(name)
        row[0].legend(fontsize=8)
    fig.tight_layout()
    return common.save_figure(fig, 'lda_headtohead')


def summary(res) -> str:
    lines = [f'{"corpus":<11} {"method":<18} {"pass 1":>8} {"pass 5":>8} {"pass 10":>8} {"final":>8} {"passes":>6} {"s/pass":>7}']
    for r in res['table']:
        lines.append(f'{r["corpus"]:<11} {r["method"]:<18} {r["ppl_pass1"]:8.2f} {r["ppl_pass5"]:8.2f} {r["ppl_pass10"]:8.2f} '
                     f'{r["ppl_final"]:8.2f} {r["passes"]:6d} {r["s_per_pass"]:7.3f}')
    for name, c in res['corpora'].items():
        a = c['acceptance']
        lines.append(f'{name}: online within 0.5% of batch VB: {a["online_within_half_percent"]} (gaps {np.round(100 * np.asarray(a["online_gap_to_batch"]), 2)}%), '
                     f'ours <= sklearn online every pass: {a["ours_le_sk_online_every_pass"]} (every seed: {a["ours_le_sk_online_every_pass_every_seed"]}), '
                     f'time ratio online {a["time_ratio_online"]:.2f}, batch {a["time_ratio_batch"]:.2f}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    return common.script_main('lda', run, summary, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
