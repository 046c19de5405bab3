"""Streaming mini-batch NGVI at scale: logistic regression, N = 1e6 rows, D = 100, from a memory-mapped .npy file.

Usage: python bench/bench_streaming.py [--quick]   (quick: N = 1e5). The data file is generated in a
temporary directory at run time and deleted afterwards; it is never committed. Reports wall time per
epoch and peak RSS (resource.getrusage, which counts file pages mapped into the process).
"""
import os, sys, json, time, resource, tempfile, shutil
from pathlib import Path
import numpy as np
from ngvi_lit.families import MvNormal
from ngvi_lit.minibatch import MemmapSource, minibatch_ngvi, glm_elbo, limit_blas_threads


def _make_data(d: Path, n: int, dim: int, seed: int = 0, chunk: int = 50_000):
    "Write X (n, dim) and y (n,) as .npy files chunk by chunk (never all in memory)."
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(dim) / np.sqrt(dim) * 2
    X = np.lib.format.open_memmap(d / 'X.npy', mode='w+', dtype=np.float64, shape=(n, dim))
    y = np.lib.format.open_memmap(d / 'y.npy', mode='w+', dtype=np.float64, shape=(n,))
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        Xc = rng.standard_normal((b - a, dim)); Xc[:, 0] = 1.
        X[a:b] = Xc
        y[a:b] = rng.random(b - a) < 1 / (1 + np.exp(-Xc @ z))
        X.flush(); y.flush()
        X._mmap.madvise(__import__('mmap').MADV_DONTNEED) if hasattr(X._mmap, 'madvise') else None
    del X, y


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(quick: bool = False) -> dict:
    "Generate the file, stream `epochs` passes of mini-batch NGVI over it, return timings and peak memory."
    n, dim, B, epochs = (100_000, 100, 1000, 1) if quick else (1_000_000, 100, 1000, 2)
    threads = int(os.environ.get('BENCH_THREADS', '1'))
    limit_blas_threads(threads)
    d = Path(tempfile.mkdtemp(prefix='ngvi_stream_'))
    try:
        t0 = time.perf_counter(); _make_data(d, n, dim); t_gen = time.perf_counter() - t0
        rss_before = _rss_mb()
        src = MemmapSource(d / 'X.npy', d / 'y.npy', chunk_rows=8192)
        prior = MvNormal(np.zeros(dim), np.eye(dim))
        q, times = prior, []
        rng = np.random.default_rng(1)
        steps = -(-n // B)
        for e in range(epochs):
            t0 = time.perf_counter()
            q = minibatch_ngvi(src, prior, 'logistic', q, rng, steps, batch_size=B, rho=0.1 if e == 0 else 0.02).q
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); elbo = glm_elbo(q, src, prior, 'logistic', batch_size=8192); t_elbo = time.perf_counter() - t0
        return dict(n=n, dim=dim, batch_size=B, steps_per_epoch=steps, blas_threads=threads,
                    file_mb=round((d / 'X.npy').stat().st_size / 2**20, 1), gen_seconds=round(t_gen, 1),
                    epoch_seconds=[round(t, 2) for t in times], elbo_pass_seconds=round(t_elbo, 2),
                    elbo_per_row=round(elbo / n, 5), peak_rss_mb_before_fit=round(rss_before, 1),
                    peak_rss_mb=round(_rss_mb(), 1))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    print(json.dumps(run('--quick' in sys.argv), indent=1))
