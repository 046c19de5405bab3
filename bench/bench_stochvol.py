"""Benchmark of the stochastic-volatility chapter (nbs/24_stochvol.ipynb): S&P 500 one-step-ahead backtest of the
NGVI stochastic-volatility models (Gaussian errors, Student-t errors, Gaussian errors with leverage) against GARCH(1,1) (normal, Student-t; `arch`) and
EWMA (lambda = 0.94) on the same held-out days; cost of a full fit at T ~ 5000; time per BandedNGVI step at
T = 1e3, 1e4, 1e5 with its log-log slope; coverage of the Laplace intervals for (mu, phi, sigma) and, with leverage, (mu, phi, sigma, rho) over simulated series.

Usage: python bench/bench_stochvol.py [--quick]
Writes bench/results/stochvol.json and bench/results/stochvol_*.png. Needs `arch` (pip install arch).
"""
from __future__ import annotations
import sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (first: fixes the BLAS thread count before numpy loads)

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from ngvi_lit import stochvol as sv  # noqa: E402
from ngvi_lit.banded import BandedNGVI, StochVolAR1  # noqa: E402


def _backtest(r, n_test, every):
    start = r.size - n_test; y = r[start:]; secs = {}
    t0 = time.perf_counter(); fc_sv, info = sv.sv_backtest(r, start, every); secs['SV'] = time.perf_counter() - t0
    t0 = time.perf_counter(); fc_svt, info_t = sv.sv_backtest(r, start, every, errors='t'); secs['SV_t'] = time.perf_counter() - t0
    t0 = time.perf_counter(); fc_svl, info_l = sv.sv_backtest(r, start, every, leverage=True); secs['SV_lev'] = time.perf_counter() - t0
    t0 = time.perf_counter(); g_n = sv.garch_backtest(r, start, every, 'normal')[0]; secs['GARCH_normal'] = time.perf_counter() - t0
    t0 = time.perf_counter(); g_t = sv.garch_backtest(r, start, every, 't')[0]; secs['GARCH_t'] = time.perf_counter() - t0
    fcs = dict(SV=fc_sv, SV_t=fc_svt, SV_lev=fc_svl, GARCH_normal=g_n, GARCH_t=g_t, EWMA=sv.ewma_backtest(r, start, .94))
    sc = {k: sv.forecast_scores(f, y) for k, f in fcs.items()}
    models = {}
    for k, s in sc.items():
        models[k] = dict(mean_log_score=s['mean_log_score'], seconds=secs.get(k),
                         kupiec={f'{a:g}': s['kupiec'][a] for a in (.01, .05)},
                         upper_1pct_exceedances=int(np.sum(y > fcs[k].ppf(.99))),
                         coverage90=s['coverage'], coverage90_ci95=s['coverage_ci'],
                         pit_bin_counts=np.histogram(s['pit'], bins=10, range=(0, 1))[0].tolist())
    dm = {f'{a}-{b}': sv.dm_test(sc[a]['log_score'] - sc[b]['log_score'])
          for a in ('SV', 'SV_t', 'SV_lev') for b in ('GARCH_normal', 'GARCH_t', 'EWMA')}
    dm['SV_t-SV'] = sv.dm_test(sc['SV_t']['log_score'] - sc['SV']['log_score'])
    dm['SV_lev-SV'] = sv.dm_test(sc['SV_lev']['log_score'] - sc['SV']['log_score'])
    return dict(start=start, n_test=n_test, refit_every=every, models=models, dm=dm,
                sv_thetas=info['thetas'], sv_t_thetas=info_t['thetas'], sv_lev_thetas=info_l['thetas'], refit_days=info['refit_days']), fcs, sc


def _figures(dates, r, start, fcs, sc, sv_all):
    y = r[start:]; d = dates[start:]; paths = []
    fig, ax = common.new_figure(figsize=(9, 3.2))
    s = sc['SV_t']; ax.plot(d, y, 'k', lw=.5, label='return')
    ax.fill_between(d, *s['interval'], color='C0', alpha=.3, label='SV-t 90% interval')
    ax.plot(d, s['var'][.01], 'C3', lw=.8, label='SV-t 1% VaR'); v = y < s['var'][.01]
    ax.plot(d[v], y[v], 'rv', ms=4, label='violation'); ax.legend(fontsize=8, loc='lower left', ncol=4)
    ax.set_ylabel('daily return (%)'); ax.set_title('S&P 500 held-out days: one-step-ahead forecasts')
    paths.append(common.save_figure(fig, 'stochvol_returns'))
    fig, axs = common.new_figure(1, len(sc), figsize=(11, 2.4), sharey=True)
    lo, hi = stats.binom.ppf([.025, .975], y.size, .1)
    for ax, (k, s) in zip(axs, sc.items()):
        ax.hist(s['pit'], bins=10, range=(0, 1), alpha=.7); ax.axhspan(lo, hi, color='k', alpha=.12); ax.set_title(k, fontsize=9)
    paths.append(common.save_figure(fig, 'stochvol_pit'))
    m, v = sv_all.q.mean, sv_all.q.marginal_var()
    fig, ax = common.new_figure(figsize=(9, 3.2))
    ax.plot(dates, np.abs(r), color='.7', lw=.4, label='|return|')
    ax.fill_between(dates, np.exp((m - 1.645 * np.sqrt(v)) / 2), np.exp((m + 1.645 * np.sqrt(v)) / 2), color='C0', alpha=.4, label='90% band')
    ax.plot(dates, np.exp(m / 2 + v / 8), 'C0', lw=.8, label='posterior mean'); ax.set_ylim(0, 8); ax.legend(fontsize=8)
    ax.set_ylabel('daily volatility (%)'); ax.set_title('S&P 500 smoothed volatility (SV, NGVI)')
    paths.append(common.save_figure(fig, 'stochvol_volpath'))
    return paths


def _step_cost(Ts, repeats):
    "Seconds per BandedNGVI step near the optimum (one accepted proposal per step): wall clock and process CPU time."
    rows = []
    for T in Ts:
        y, _ = sv.simulate_sv(T, rng=np.random.default_rng(T)); mod = StochVolAR1(y, 0., .97, .15); algo = BandedNGVI()
        s0 = algo.init(mod, None)
        for _ in range(8): s0, _i = algo.step(mod, s0, None)     # near the optimum: rho = 1 accepted
        n = max(repeats, 100_000 // T); walls, cpus, rej = [], [], 0
        algo.step(mod, s0, None)                                 # warm-up
        for _ in range(n):
            w, c = time.perf_counter(), time.process_time()
            _s, info = algo.step(mod, s0, None)
            cpus.append(time.process_time() - c); walls.append(time.perf_counter() - w); rej += info.n_rejected
        rows.append(dict(T=T, steps_timed=n, seconds_per_step=float(np.median(walls)), cpu_seconds_per_step=float(np.median(cpus)),
                         wall=common.spread(walls), cpu=common.spread(cpus), rejected_proposals=rej))
    Tv = [r['T'] for r in rows]
    return dict(rows=rows, loglog_slope=common.loglog_slope(Tv, [r['seconds_per_step'] for r in rows]),
                loglog_slope_cpu=common.loglog_slope(Tv, [r['cpu_seconds_per_step'] for r in rows]))


def _coverage(n_seeds, T, theta=(0., .97, .15), leverage=False):
    z, inside, rmse, secs = [], [], [], []
    for s in range(n_seeds):
        y, h = sv.simulate_sv(T, *theta[:3], rho=theta[3] if leverage else 0., rng=np.random.default_rng(1000 + s))
        t0 = time.perf_counter(); f = sv.fit_sv(y, leverage=leverage); secs.append(time.perf_counter() - t0)
        d = sv.sv_to_psi(theta, leverage) - f.psi; z.append(d / np.sqrt(np.diag(f.psi_cov)))
        ci = f.interval(.95); inside.append([lo <= t <= hi for (lo, hi), t in zip(ci, theta)])
        rmse.append(float(np.sqrt(np.mean((np.exp(f.q.mean / 2 + f.q.marginal_var() / 8) - np.exp(h / 2))**2))))
    z = np.array(z); inside = np.array(inside)
    return dict(n_series=n_seeds, T=T, theta=list(theta), coverage95=inside.mean(0).tolist(),
                coverage95_ci=[sv.binomial_interval(int(k), n_seeds) for k in inside.sum(0)],
                z_mean=z.mean(0).tolist(), z_sd=z.std(0, ddof=1).tolist(), vol_rmse_median=float(np.median(rmse)),
                fit_seconds_median=float(np.median(secs)))


def run(quick: bool = False) -> dict:
    "Run the benchmark; return a JSON-serialisable dict."
    t_all = time.perf_counter()
    dates, r = sv.sp500_returns()
    n_test, every = (250, 50) if quick else (1000, 20)
    bt, fcs, sc = _backtest(r, n_test, every)
    fit_times = {}
    for errors in ('normal', 't', 'leverage'):
        ts = []
        for _ in range(1 if quick else 5):
            t0 = time.perf_counter()
            f = sv.fit_sv(r, leverage=True) if errors == 'leverage' else sv.fit_sv(r, errors=errors)
            ts.append(time.perf_counter() - t0)
        fit_times[errors] = dict(T=r.size, spread=common.spread(ts), theta=f.theta, theta_sd=f.theta_sd(),
                                 ci95=f.interval(.95), elbo=f.elbo, n_fits=f.n_fits, n_steps=f.n_steps)
        if errors == 'normal': sv_all = f
    cost = _step_cost((10**3, 10**4) if quick else (10**3, 10**4, 10**5), 3 if quick else 7)
    cov = _coverage(5 if quick else 50, 2000 if quick else 5000)
    cov_lev = _coverage(5 if quick else 30, 2000 if quick else 5000, (0., .97, .15, -.5), leverage=True)
    figs = _figures(dates, r, bt['start'], fcs, sc, sv_all)
    # sensitivity to the held-out length (the primary, pre-chosen period is the last 1000 days; all lengths reported)
    other = {}
    for n_other in (() if quick else (500, 2000)):
        b2 = _backtest(r, n_other, every)[0]
        other[str(n_other)] = dict(first_day=str(dates[b2['start']])[:10], models={
            k: dict(mean_log_score=v['mean_log_score'], var1=v['kupiec']['0.01']['violations'], var1_accept=v['kupiec']['0.01']['accept'],
                    var5=v['kupiec']['0.05']['violations'], var5_accept=v['kupiec']['0.05']['accept'],
                    region1=v['kupiec']['0.01']['region'], region5=v['kupiec']['0.05']['region'], coverage90=v['coverage90'])
            for k, v in b2['models'].items()}, dm_sv_vs_garch_normal=b2['dm']['SV-GARCH_normal'], dm_svt_vs_garch_normal=b2['dm']['SV_t-GARCH_normal'],
            dm_svlev_vs_garch_normal=b2['dm']['SV_lev-GARCH_normal'])
    m = bt['models']
    acc = dict(
        logscore_sv_ge_garch_normal=m['SV']['mean_log_score'] >= m['GARCH_normal']['mean_log_score'],
        logscore_svt_ge_garch_normal=m['SV_t']['mean_log_score'] >= m['GARCH_normal']['mean_log_score'],
        dm_sv_vs_garch_normal=bt['dm']['SV-GARCH_normal'], dm_svt_vs_garch_normal=bt['dm']['SV_t-GARCH_normal'],
        kupiec_sv={a: m['SV']['kupiec'][a]['accept'] for a in ('0.01', '0.05')},
        kupiec_svt={a: m['SV_t']['kupiec'][a]['accept'] for a in ('0.01', '0.05')},
        kupiec_svlev={a: m['SV_lev']['kupiec'][a]['accept'] for a in ('0.01', '0.05')},
        logscore_svlev_ge_garch_normal=m['SV_lev']['mean_log_score'] >= m['GARCH_normal']['mean_log_score'],
        dm_svlev_vs_garch_normal=bt['dm']['SV_lev-GARCH_normal'],
        full_fit_lev_seconds_median=fit_times['leverage']['spread']['median'],
        full_fit_seconds_median=fit_times['normal']['spread']['median'],
        full_fit_t_seconds_median=fit_times['t']['spread']['median'],
        full_fit_under_2s=fit_times['normal']['spread']['median'] < 2,
        step_loglog_slope=cost['loglog_slope'], step_loglog_slope_cpu=cost['loglog_slope_cpu'])
    return dict(benchmark='stochvol', quick=quick, data='S&P 500 daily percent log returns, arch.data.sp500 (1999-2018)',
                backtest=bt, heldout_length_sensitivity=other, full_fit=fit_times, step_cost=cost, laplace_coverage=cov, laplace_coverage_leverage=cov_lev, acceptance=acc,
                figures=[str(p.relative_to(common.REPO_DIR)) for p in figs], wall_seconds=time.perf_counter() - t_all)


def summary(res: dict) -> str:
    bt = res['backtest']; lines = [f"held-out {bt['n_test']} days, refit every {bt['refit_every']}:"]
    for k, v in bt['models'].items():
        k1, k5 = v['kupiec']['0.01'], v['kupiec']['0.05']
        lines.append(f"  {k:13s} log score {v['mean_log_score']:.4f}; VaR1 {k1['violations']} (p {k1['p_value']:.3f}) "
                     f"VaR5 {k5['violations']} (p {k5['p_value']:.3f}); 90% cov {v['coverage90']:.3f}")
    for k, v in bt['dm'].items(): lines.append(f"  DM {k:17s} {v['mean']:+.4f} (NW se {v['se']:.4f}, z {v['z']:+.2f})")
    c = res['step_cost']
    lines.append('  step cost (wall / cpu): ' + ', '.join(f"T={r['T']}: {r['seconds_per_step'] * 1e3:.2f} / {r['cpu_seconds_per_step'] * 1e3:.2f} ms" for r in c['rows'])
                 + f"; log-log slope {c['loglog_slope']:.2f} (wall), {c['loglog_slope_cpu']:.2f} (cpu)")
    ff = res['full_fit']
    lines.append(f"  full fit T={ff['normal']['T']}: SV {ff['normal']['spread']['median']:.2f} s, SV-t {ff['t']['spread']['median']:.2f} s, "
                 f"SV-lev {ff['leverage']['spread']['median']:.2f} s (rho {ff['leverage']['theta'][3]:.3f})")
    for n_o, o in res.get('heldout_length_sensitivity', {}).items():
        lines.append(f"  held-out {n_o} days from {o['first_day']}: " + '; '.join(
            f"{k} {v['mean_log_score']:.4f} VaR1 {v['var1']}{'' if v['var1_accept'] else '!'} VaR5 {v['var5']}{'' if v['var5_accept'] else '!'}"
            for k, v in o['models'].items()))
    cv = res['laplace_coverage']
    lines.append(f"  Laplace 95% coverage over {cv['n_series']} series (T={cv['T']}): {np.round(cv['coverage95'], 2).tolist()}, "
                 f"z sd {np.round(cv['z_sd'], 2).tolist()}")
    cv = res['laplace_coverage_leverage']
    lines.append(f"  leverage: Laplace 95% coverage over {cv['n_series']} series (T={cv['T']}) of (mu, phi, sigma, rho): {np.round(cv['coverage95'], 2).tolist()}, "
                 f"z sd {np.round(cv['z_sd'], 2).tolist()}")
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(common.script_main('stochvol', run, summary, __doc__))
