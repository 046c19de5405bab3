"""NumPyro SVI worker, run as a subprocess by bench_peers.py in an interpreter that has numpyro (it needs only
numpy and numpyro, not ngvi_lit). Usage: python _numpyro_svi.py IN.npz OUT.npz

IN holds X (N, D), y (N,), prior_var, lrs, steps, chunk, seed, x64. For each learning rate it runs SVI with an
AutoMultivariateNormal guide (full-rank Gaussian; loc starts at the prior median, scale at the default 0.1), Trace_ELBO with one particle and Adam, compiled as a lax.scan
over `chunk` steps, and stores the guide's (loc, scale_tril) after every chunk with the cumulative run time
(compilation excluded and reported separately).
"""
import os, sys, time
import numpy as np

t_import = time.perf_counter()
inp = dict(np.load(sys.argv[1]))
if bool(inp['x64']):
    os.environ.setdefault('JAX_ENABLE_X64', '1')
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import SVI, Trace_ELBO  # noqa: E402
from numpyro.infer.autoguide import AutoMultivariateNormal  # noqa: E402
from numpyro.infer.initialization import init_to_median  # noqa: E402
from numpyro.optim import Adam  # noqa: E402
t_import = time.perf_counter() - t_import

X = jnp.asarray(inp['X']); y = jnp.asarray(inp['y'])
D = X.shape[1]
prior_sd = float(np.sqrt(inp['prior_var']))


def model(X, y):
    z = numpyro.sample('z', dist.Normal(jnp.zeros(D), prior_sd).to_event(1))
    numpyro.sample('y', dist.Bernoulli(logits=X @ z), obs=y)


out = dict(import_seconds=t_import, jax_version=jax.__version__, numpyro_version=numpyro.__version__,
           x64=bool(jax.config.jax_enable_x64), devices=str(jax.devices()))
steps, chunk = int(inp['steps']), int(inp['chunk'])
for i, lr in enumerate(inp['lrs']):
    guide = AutoMultivariateNormal(model, init_loc_fn=init_to_median)   # loc starts at the prior median 0, like NGVI
    svi = SVI(model, guide, Adam(float(lr)), Trace_ELBO())
    t0 = time.perf_counter()
    state = svi.init(jax.random.PRNGKey(int(inp['seed'])), X, y)
    jax.block_until_ready(state)
    t_init = time.perf_counter() - t0

    def body(s, _):
        s, loss = svi.update(s, X, y)
        return s, loss

    def run_chunk(s):
        return jax.lax.scan(body, s, None, length=chunk)

    t0 = time.perf_counter()
    compiled = jax.jit(run_chunk).lower(state).compile()
    t_compile = time.perf_counter() - t0
    p = svi.get_params(state)
    locs, trils, ts, ks, losses = [np.asarray(p['auto_loc'])], [np.asarray(p['auto_scale_tril'])], [0.0], [0], []
    run = 0.0
    for k in range(steps // chunk):
        t0 = time.perf_counter()
        state, loss = compiled(state)
        jax.block_until_ready(state)
        run += time.perf_counter() - t0
        p = svi.get_params(state)
        locs.append(np.asarray(p['auto_loc'])); trils.append(np.asarray(p['auto_scale_tril']))
        ts.append(run); ks.append((k + 1) * chunk); losses.append(float(np.mean(np.asarray(loss))))
    out[f'lr{i}_loc'] = np.array(locs); out[f'lr{i}_tril'] = np.array(trils)
    out[f'lr{i}_time'] = np.array(ts); out[f'lr{i}_step'] = np.array(ks); out[f'lr{i}_loss'] = np.array(losses)
    out[f'lr{i}_init_seconds'] = t_init; out[f'lr{i}_compile_seconds'] = t_compile
np.savez(sys.argv[2], **out)
