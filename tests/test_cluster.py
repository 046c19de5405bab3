"""Tests for ngvi_lit.cluster: NGVI on a real Dask LocalCluster (started and stopped here, on 127.0.0.1), exact and
mini-batch fits against the single-process library, a worker killed mid-iteration, import without dask, bad input."""
import importlib.util, os, signal, sys, time
from pathlib import Path
import numpy as np
import pytest
import ngvi_lit
from ngvi_lit.models import LogisticRegression
from ngvi_lit.fit import fit

N, D, ROWS = 1200, 3, 300


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)); X[:, 0] = 1.
    y = (rng.random(N) < 1 / (1 + np.exp(-X @ np.array([.5, -1., .8])))).astype(float)
    return X, y


def _children():
    "Live child processes, except multiprocessing's resource tracker (Python's own helper; it exits with the interpreter)."
    import psutil
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and 'resource_tracker' not in ' '.join(p.cmdline()): out.add(p.pid)
        except psutil.NoSuchProcess: pass
    return out


@pytest.fixture(scope='module')
def on_cluster():
    "A DaskGLM that starts its own LocalCluster (2 processes) for this module; on teardown no process may be left."
    if os.environ.get('NGVI_CLUSTER_TESTS') != '1':
        pytest.skip("starts a Dask cluster: run by `make test` (NGVI_CLUSTER_TESTS=1), not by a bare pytest")
    from ngvi_lit.cluster import DaskGLM
    before = _children()
    X, y = _data()
    m = DaskGLM(X, y, 1., 'logistic', chunk_rows=ROWS)
    yield m, X, y
    m.close()
    deadline = time.time() + 15
    while (left := _children() - before) and time.time() < deadline: time.sleep(.05)
    assert not left, f"processes left behind by the cluster: {sorted(left)}"


def test_exact_fit_equals_single_process(on_cluster):
    "Full-batch NGVI with exact expectations reduced over 4 partitions = the in-memory model's fit; the message says a cluster was started."
    from ngvi_lit.cluster import fit_dask
    m, X, y = on_cluster
    ref = fit(LogisticRegression(X, y, 1.), rng=np.random.default_rng(1), newton=False)   # the cluster model takes no Newton steps (rows not in one process)
    res = fit_dask(m, rng=np.random.default_rng(1))
    assert res.status == ref.status == 'converged' and res.nit == ref.nit
    np.testing.assert_allclose(res.q.mean, ref.q.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.q.cov, ref.q.cov, rtol=1e-10, atol=1e-12)
    assert 'started a LocalCluster on 127.0.0.1' in res.message
    assert m.n_partitions == N // ROWS and res.cluster['passes'].sum() > 0 and res.cluster['workers_lost'].sum() == 0


def test_minibatches_from_the_partitions(on_cluster):
    "Mini-batch NGVI gathers its batches from the cluster (an epoch covers every row once) and moves toward the optimum."
    from ngvi_lit.cluster import fit_dask
    m, X, y = on_cluster
    seen = np.concatenate([yb for _, yb in m.source.batches(250, np.random.default_rng(0))])
    assert len(seen) == N and seen.sum() == y.sum()
    res = fit_dask(m, rng=np.random.default_rng(2), batch_size=300, max_iter=8)
    assert res.rows_seen == 8 * 300 and np.all(np.isfinite(res.q.mean))
    assert res.q.kl(m.prior) > 1.                      # it left the prior


def test_worker_killed_mid_iteration(on_cluster, tmp_path):
    "A worker process is SIGKILLed inside a task of iteration 3: the run finishes with the same answer and says so."
    import dask.array as da
    from ngvi_lit.cluster import DaskGLM, fit_dask
    m, X, y = on_cluster
    flag = str(tmp_path / 'kill')

    def chaos(b, flag=flag):                            # runs in the worker: the first task to see the flag kills its process
        try: os.remove(flag)
        except FileNotFoundError: return b
        os.kill(os.getpid(), signal.SIGKILL)

    Xk = da.from_array(X, chunks=(ROWS, D)).map_blocks(chaos, dtype=float)
    mk = DaskGLM(Xk, da.from_array(y, chunks=ROWS), 1., 'logistic', client=m.client)   # the user's client: not closed by mk
    def cb(r):
        if r.nit == 2: open(flag, 'w').close()
    res = fit_dask(mk, rng=np.random.default_rng(1), callback=cb)
    ref = fit(LogisticRegression(X, y, 1.), rng=np.random.default_rng(1), newton=False)   # the cluster model takes no Newton steps (rows not in one process)
    assert not os.path.exists(flag), "the fault was never injected"
    assert res.status == 'converged'
    np.testing.assert_allclose(res.q.mean, ref.q.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.q.cov, ref.q.cov, rtol=1e-10, atol=1e-12)
    assert res.cluster['workers_lost'][2] == 1 and res.cluster['workers_lost'].sum() == 1
    assert 'lost during iteration 3' in res.message and 'recomputed' in res.message
    assert 'started a LocalCluster' not in res.message
    mk.close()                                          # a no-op: the client is the caller's


def test_bad_input_names_the_argument(on_cluster):
    from ngvi_lit.cluster import DaskGLM
    m, X, y = on_cluster
    with pytest.raises(ValueError, match='`y`'): DaskGLM(X, y + 1., 1., 'logistic', client=m.client)
    Xn = X.copy(); Xn[5, 1] = np.nan
    with pytest.raises(ValueError, match='`X`'): DaskGLM(Xn, y, 1., 'logistic', client=m.client)
    with pytest.raises(ValueError, match='`y` must have shape'): DaskGLM(X, y[:-1], 1., 'logistic', client=m.client)
    with pytest.raises(TypeError, match='`client`'): DaskGLM(X, y, 1., 'logistic', client='tcp://127.0.0.1:1')
    with pytest.raises(TypeError, match='`lik`'): DaskGLM(X, y, 1., 3, client=m.client)
    with pytest.raises(ValueError, match='rows live on the Dask cluster'): m.rows()


def test_imports_without_dask(monkeypatch):
    "The module imports with dask and distributed absent; using it then raises an ImportError naming the extra."
    for name in [k for k in sys.modules if k == 'dask' or k.startswith(('dask.', 'distributed'))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, 'dask', None); monkeypatch.setitem(sys.modules, 'distributed', None)
    spec = importlib.util.spec_from_file_location('ngvi_lit._cluster_without_dask', Path(ngvi_lit.__file__).parent / 'cluster.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(ImportError, match=r'pip install ngvi_lit\[dask\]'): mod.local_cluster()
    X, y = _data()
    with pytest.raises(ImportError, match=r'pip install ngvi_lit\[dask\]'): mod.DaskGLM(X, y, 1.)
