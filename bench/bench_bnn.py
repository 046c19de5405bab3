"""Bayesian networks by natural gradients (issue 11): cost per epoch of VOGN, noisy K-FAC and IVON-style against MAP-Adam
in the same numpy code, and the IVON peer (the `ivon-opt` package on PyTorch) where it is installed.

Usage: python bench/bench_bnn.py [--quick]. Digits (1,797 8x8 images), a 64-100-10 tanh network, mini-batches of 64,
prior precision 1, one fixed 80/20 split. Time per epoch is the best of `repeats` whole runs of `epochs` epochs (fit's loop
included: batching, views, history; noisy K-FAC's warm-up refreshes included), on one BLAS thread, at batch 64 and 256, in wall-clock
time and in this process's CPU time (`time.process_time`: on a machine shared with other jobs the wall-clock ratios move
with their load, the CPU-time ratios much less). The peer trains the same architecture on the same split
and epochs and is scored by the same metrics (accuracy, NLL, ECE with 15 bins); where torch / ivon are not importable
it is skipped with a note. For context on MAP's calibration, the run also scores the posterior mode (full-batch L-BFGS) and
MAP-Adam at 3x and 10x Adam's default step (`map_context`). Benchmarks measure; they assert nothing.
"""
from __future__ import annotations
import os, sys, json, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (first: one BLAS thread)
import numpy as np
from ngvi_lit.nn import MLP, CategoricalLik
from ngvi_lit.bnn import BNN, VOGN, IVON, NoisyKFACNet, MAPAdam, BBVI, train, evaluate, ece
from ngvi_lit.datasets import load_digits


def _split(seed: int = 100):
    g = load_digits(); X, y = g.X / 16, g.y.astype(int)
    perm = np.random.default_rng(seed).permutation(len(X))
    return X[perm[:1437]], y[perm[:1437]], X[perm[1437:]], y[perm[1437:]]


def _methods():
    return {'MAP-Adam': MAPAdam(lr=1e-3), 'VOGN': VOGN(lr=0.1), 'noisy K-FAC': NoisyKFACNet(lr=0.1, stats_every=10),
            'IVON-style': IVON(lr=0.1, beta2=0.99999, h0=0.1), 'BBVI-Adam': BBVI(lr=1e-3), 'ensemble (5)': MAPAdam(lr=1e-3, n_members=5)}


_PEER = r"""
import sys, json, time
import numpy as np, torch, ivon
d = np.load(sys.argv[1]); epochs, seed = int(d['epochs']), int(d['seed'])
Xtr, ytr, Xte, yte = d['Xtr'], d['ytr'].astype(int), d['Xte'], d['yte'].astype(int)
torch.manual_seed(seed); torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Linear(64, 100), torch.nn.Tanh(), torch.nn.Linear(100, 10)).double()
with torch.no_grad():                       # the same starting weights as the numpy runs (rows: inputs, last row: bias)
    for lin, W in ((net[0], d['W0']), (net[2], d['W1'])):
        lin.weight.copy_(torch.tensor(W[:-1].T)); lin.bias.copy_(torch.tensor(W[-1]))
N, wd, h0 = len(Xtr), float(d['prior_prec']) / len(Xtr), float(d['h0'])
# ivon-opt multiplies lr by (hess_init + weight_decay); this lr makes its mean step lr_ours * (g + wd m) / (h + wd)
opt = ivon.IVON(net.parameters(), lr=float(d['lr']) / (h0 + wd), ess=N, weight_decay=wd, hess_init=h0, beta2=float(d['beta2']))
Xt, yt = torch.tensor(Xtr), torch.tensor(ytr)
rng = np.random.default_rng(seed); t0 = time.perf_counter()
for _ in range(epochs):
    for idx in np.array_split(rng.permutation(N), -(-N // 64)):
        with opt.sampled_params(train=True):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(Xt[idx]), yt[idx]).backward()
        opt.step()
secs = (time.perf_counter() - t0) / epochs
probs = []
with torch.no_grad():
    for _ in range(32):
        with opt.sampled_params():
            probs.append(torch.softmax(net(torch.tensor(Xte)), 1).numpy())
print(json.dumps(dict(P=np.mean(probs, 0).tolist(), seconds_per_epoch=secs, torch=torch.__version__,
                      ivon=getattr(ivon, '__version__', 'ivon-opt'))))
"""


def _ivon_peer(model, Xte, yte, epochs: int, seed: int = 0) -> dict:
    "The reference IVON (ivon-opt, PyTorch CPU) on the same 64-100-10 tanh network, split, start, epochs and settings as `IVON-style`; run in this interpreter if torch imports, else in $NGVI_TORCH_PYTHON."
    import importlib.util, subprocess, tempfile
    py = sys.executable if importlib.util.find_spec('torch') and importlib.util.find_spec('ivon') else os.environ.get('NGVI_TORCH_PYTHON')
    if not py:
        return dict(status='skipped', note='torch / ivon-opt not importable and NGVI_TORCH_PYTHON not set: torch is a 700 MB+ '
                    'wheel (200 MB for the +cpu build), kept out of the project venv; install torch and ivon-opt into a separate '
                    'environment and point NGVI_TORCH_PYTHON at its python to run the peer')
    W = model.net.unpack(model.net.init(np.random.default_rng(seed)))    # what train(..., rng=default_rng(seed)) starts from
    ours = _methods()['IVON-style']
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, 'peer.npz')
        np.savez(f, Xtr=model.X, ytr=model.y, Xte=Xte, yte=yte, W0=W[0], W1=W[1], epochs=epochs, seed=seed,
                 prior_prec=model.prior_prec, lr=ours.lr, h0=ours.h0, beta2=ours.b2)
        run = subprocess.run([py, '-c', _PEER, f], capture_output=True, text=True, timeout=3600)
    if run.returncode != 0: return dict(status='error', note=run.stderr[-2000:])
    r = json.loads(run.stdout.strip().splitlines()[-1]); P = np.array(r['P'])
    return dict(status='ok', python=py, acc=float((P.argmax(1) == yte).mean()), nll=float(-np.mean(np.log(P[np.arange(len(yte)), yte]))),
                ece=ece(P, yte), seconds_per_epoch=r['seconds_per_epoch'], torch=r['torch'],
                note='last iterate of ivon-opt, 32 posterior draws; compare with IVON-style nll_last / ece_last')


def _map_context(model, Xte, yte, epochs: int, base) -> dict:
    "How far MAP-Adam at Adam's default step is from the posterior mode, and whether that mode is over- or underconfident: the mode by full-batch L-BFGS from MAP-Adam's last weights, and MAP-Adam at 3x and 10x the step on the same batches and epochs (scored like the methods: Polyak average over the second half). `base`: the timed run's MAP-Adam result (1x step, seed 0), reused rather than trained again."
    from scipy.optimize import minimize
    from ngvi_lit.bnn import PointMass
    T = epochs * -(-len(model.X) // 64); lam = model.prior_prec; out = {}
    def row(q, n):
        e = evaluate(model, q, Xte, yte, np.random.default_rng(3), n)
        return dict(acc=e['acc'], nll=e['nll'], ece=e['ece'], conf=float(e['probs'].max(1).mean()), neg_log_joint=model.neg_log_joint(q.mean))
    out['MAP-Adam 1x step'] = row(base.q_avg, 32)
    for k in (3, 10):
        r_k = train(model, MAPAdam(lr=k * 1e-3), rng=np.random.default_rng(0), epochs=epochs, batch_size=64, average_from=T // 2)
        out[f'MAP-Adam {k}x step'] = row(r_k.q_avg, 32)
    opt = minimize(lambda w: (model.neg_log_joint(w), model.nll_grad(w)[1] + lam * w), base.q.mean, jac=True, method='L-BFGS-B',
                   options=dict(maxiter=20000, gtol=1e-6))
    out['mode (L-BFGS)'] = dict(row(PointMass(opt.x), 1), lbfgs_iterations=int(opt.nit), grad_norm=float(np.linalg.norm(opt.jac)))
    return out


def run(quick: bool = False) -> dict:
    "Seconds per epoch of each method (best of repeats), ratios to MAP-Adam, test metrics of the longest run, and the IVON peer."
    epochs, repeats = (5, 1) if quick else (100, 3)
    Xtr, ytr, Xte, yte = _split()
    model = BNN(MLP((64, 100, 10)), CategoricalLik(), Xtr, ytr, prior_prec=1.)
    out = dict(network='64-100-10 tanh', batch_size=64, epochs=epochs, repeats=repeats, methods={},
               note='time: best of `repeats` whole runs of `epochs` epochs (warm-up included; interleaved across methods, so a '
                    'burst of load hits every method alike); metrics: the first batch-64 run, scored by the Polyak average of q '
                    'over its second half, as in the chapter')
    ts = {k: [] for k in _methods()}; ts256 = {k: [] for k in _methods()}; cpu = {k: [] for k in _methods()}; cpu256 = {k: [] for k in _methods()}; ev, first = {}, {}
    train(model, MAPAdam(), rng=np.random.default_rng(0), epochs=1, batch_size=64)   # untimed: first-call imports and allocations
    for r in range(repeats):
        for name, algo in _methods().items():
            T = epochs * -(-len(Xtr) // 64)
            c0 = time.process_time()
            res = train(model, algo, rng=np.random.default_rng(r), epochs=epochs, batch_size=64, average_from=T // 2)
            cpu[name].append((time.process_time() - c0) / epochs); ts[name].append(res.wall_time / epochs)
            if r == 0: first[name] = res; ev[name] = (res.status, evaluate(model, res.q_avg, Xte, yte, np.random.default_rng(3), 32),
                                   evaluate(model, res.q, Xte, yte, np.random.default_rng(3), 32))
            c0 = time.process_time()
            ts256[name].append(train(model, algo, rng=np.random.default_rng(r), epochs=epochs, batch_size=256).wall_time / epochs)
            cpu256[name].append((time.process_time() - c0) / epochs)
    for name in _methods():
        st, e, el = ev[name]
        out['methods'][name] = dict(seconds_per_epoch=min(ts[name]), all_seconds=ts[name], seconds_per_epoch_b256=min(ts256[name]),
                                    cpu_seconds_per_epoch=min(cpu[name]), cpu_seconds_per_epoch_b256=min(cpu256[name]),
                                    status=st, acc=e['acc'], nll=e['nll'], ece=e['ece'], acc_last=el['acc'], nll_last=el['nll'], ece_last=el['ece'])
    base, base256 = out['methods']['MAP-Adam']['seconds_per_epoch'], out['methods']['MAP-Adam']['seconds_per_epoch_b256']
    cbase, cbase256 = out['methods']['MAP-Adam']['cpu_seconds_per_epoch'], out['methods']['MAP-Adam']['cpu_seconds_per_epoch_b256']
    for v in out['methods'].values():
        v['ratio_to_map'], v['ratio_to_map_b256'] = v['seconds_per_epoch'] / base, v['seconds_per_epoch_b256'] / base256
        v['cpu_ratio_to_map'], v['cpu_ratio_to_map_b256'] = v['cpu_seconds_per_epoch'] / cbase, v['cpu_seconds_per_epoch_b256'] / cbase256
    out['peer_ivon'] = _ivon_peer(model, Xte, yte, epochs)
    out['map_context'] = _map_context(model, Xte, yte, epochs, first['MAP-Adam'])
    r = out['methods']
    out['acceptance'] = dict(cost_vogn_le_3x_map=r['VOGN']['ratio_to_map'] <= 3, cost_kfac_le_3x_map=r['noisy K-FAC']['ratio_to_map'] <= 3,
                             cpu_cost_vogn_le_3x_map=r['VOGN']['cpu_ratio_to_map'] <= 3, cpu_cost_kfac_le_3x_map=r['noisy K-FAC']['cpu_ratio_to_map'] <= 3)
    return out


def summary(res: dict) -> str:
    lines = [f"{k:13s} {v['seconds_per_epoch'] * 1e3:7.1f} ms/epoch  x{v['ratio_to_map']:.2f} MAP (batch 256: x{v['ratio_to_map_b256']:.2f})  CPU time x{v['cpu_ratio_to_map']:.2f} (x{v['cpu_ratio_to_map_b256']:.2f})   acc {v['acc']:.3f}  nll {v['nll']:.3f}  ece {v['ece']:.3f}"
             for k, v in res['methods'].items()]
    p, o = res['peer_ivon'], res['methods']['IVON-style']
    lines.append(f"IVON-style last iterate: acc {o['acc_last']:.3f} nll {o['nll_last']:.3f} ece {o['ece_last']:.3f}")
    lines.append('peer ivon-opt: ' + (f"acc {p['acc']:.3f} nll {p['nll']:.3f} ece {p['ece']:.3f} {p['seconds_per_epoch'] * 1e3:.1f} ms/epoch"
                                      if p['status'] == 'ok' else f"skipped: {p['note']}"))
    for k, v in res.get('map_context', {}).items():
        lines.append(f"{k:18s} acc {v['acc']:.3f} conf {v['conf']:.3f} nll {v['nll']:.4f} ece {v['ece']:.4f} -log joint {v['neg_log_joint']:.1f}")
    return '\n'.join(lines)


if __name__ == '__main__':
    res = run('--quick' in sys.argv)
    print(summary(res))
    if '--quick' not in sys.argv:
        path = common.write_json('bnn', res); print('->', path)
