"""Run the benchmark suite: every bench/bench_*.py module that exposes `run(quick) -> dict`.

Usage: python bench/run.py [--quick] [--only NAME[,NAME...]] [--list]
Writes bench/results/NAME.json per benchmark (machine description included), the figures the benchmarks draw,
and bench/results/index.json (what ran, how long, on what). Benchmarks measure; they assert nothing (tests do).
BLAS runs on one thread unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS are set by the caller.
"""
from __future__ import annotations
import argparse, importlib, sys, time, traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402  (first: fixes the BLAS thread count before numpy loads)

# name -> module; the order is the order of the run (cheap first)
BENCHMARKS = {'solvers': 'bench_solvers', 'floor': 'bench_floor', 'streaming': 'bench_streaming', 'soak': 'bench_soak',
              'peers': 'bench_peers', 'stochvol': 'bench_stochvol', 'lda': 'bench_lda', 'cluster': 'bench_cluster',
              'bnn': 'bench_bnn', 'amortised': 'bench_amortised'}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='tiny sizes, one or few repeats, no peers that need compiling')
    ap.add_argument('--only', default='', help=f'comma-separated subset of {", ".join(BENCHMARKS)}')
    ap.add_argument('--list', action='store_true', help='list the benchmarks and whether their module is present')
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(',') if n.strip()] or list(BENCHMARKS)
    bad = [n for n in names if n not in BENCHMARKS]
    if bad: ap.error(f'unknown benchmark(s) {bad}; choose from {list(BENCHMARKS)}')
    if args.list:
        for n, mod in BENCHMARKS.items():
            print(f'{n:<10} bench/{mod}.py {"present" if (HERE / f"{mod}.py").exists() else "missing"}')
        return 0

    t_all = time.perf_counter()
    machine = common.machine_info()
    print(f"machine: {machine['host_cpu']}, {machine['cpu_count']} cpus, load {machine['loadavg_1_5_15']}, "
          f"numpy {machine['numpy']}, scipy {machine['scipy']}, BLAS threads {machine['threads_env']['OPENBLAS_NUM_THREADS']}")
    index = dict(command=' '.join(['bench/run.py'] + (argv if argv is not None else sys.argv[1:])), quick=args.quick,
                 started=machine['time'], machine_at_start=machine, benchmarks={})
    failed = False
    for name in names:
        mod_name = BENCHMARKS[name]
        entry = index['benchmarks'][name] = dict(module=f'bench/{mod_name}.py')
        if not (HERE / f'{mod_name}.py').exists():
            entry.update(status='skipped', note=f'bench/{mod_name}.py not present'); print(f'[{name}] skipped: not present')
            continue
        print(f'[{name}] running{" (quick)" if args.quick else ""} ...', flush=True)
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(mod_name)
            if not hasattr(mod, 'run'): raise AttributeError(f'{mod_name} has no run(quick) function')
            load_before = machine_info_load()
            res = mod.run(args.quick)
            res = res if isinstance(res, dict) else dict(result=res)
            res['machine'] = common.machine_info()
            res['loadavg_before'] = load_before
            res['runner_seconds'] = time.perf_counter() - t0
            path = common.write_json(name, res)
            entry.update(status='ok', seconds=res['runner_seconds'], json=str(path.relative_to(HERE.parent)),
                         figures=res.get('figures', []), acceptance=res.get('acceptance'))
            if hasattr(mod, 'summary'):
                try: print(mod.summary(res))
                except Exception as e: print(f'  (summary failed: {e})')
            print(f'[{name}] ok in {res["runner_seconds"]:.1f} s -> {path.relative_to(HERE.parent)}', flush=True)
        except Exception as e:
            failed = True
            entry.update(status='error', seconds=time.perf_counter() - t0, error=f'{type(e).__name__}: {e}',
                         traceback=traceback.format_exc()[-3000:])
            print(f'[{name}] ERROR: {type(e).__name__}: {e}', flush=True)
    index['seconds'] = time.perf_counter() - t_all
    index['machine_at_end'] = common.machine_info()
    common.write_json('index', index)
    print(f'total {index["seconds"]:.1f} s; results in {common.RESULTS_DIR.relative_to(HERE.parent)}/')
    return 1 if failed else 0


def machine_info_load():
    import os
    try: return list(os.getloadavg())
    except OSError: return None


if __name__ == '__main__':
    sys.exit(main())
