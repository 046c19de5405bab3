# ngvi_lit: every command a developer or CI needs. Each target creates .venv if missing.
# Stamps make a second run reinstall nothing.
SHELL := /bin/bash
PY ?= python3
export PIP_DISABLE_PIP_VERSION_CHECK := 1
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.stamp-run
DEV_STAMP := $(VENV)/.stamp-dev
BENCH_STAMP := $(VENV)/.stamp-bench
NBDEV_WORKERS ?= 2
# one BLAS thread per test worker: 2 workers x multithreaded BLAS oversubscribe 2 cores.
# NGVI_CLUSTER_TESTS=1: the tests that start (and stop) a Dask LocalCluster on 127.0.0.1 run here; a bare pytest skips them
TEST_ENV := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NGVI_CLUSTER_TESTS=1

.PHONY: help demo test test-coretypes test-slow sync-check export clean-nbs nbtest pytest docs docs-check readme lab bench bench-quick dist clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): $(BIN)/python setup.py settings.ini
	$(BIN)/python -m pip install -q -e .
	touch $@

$(DEV_STAMP): $(BIN)/python setup.py settings.ini
	$(BIN)/python -m pip install -q -e ".[dev,dask]"
	touch $@ $(RUN_STAMP)

$(BENCH_STAMP): $(DEV_STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,dask,bench]"
	touch $@

demo: $(RUN_STAMP)  ## install (if needed) and run the package's main job
	$(BIN)/ngvi demo

export: $(DEV_STAMP)  ## notebooks -> ngvi_lit/
	$(BIN)/nbdev_export

sync-check: $(DEV_STAMP)  ## fail if ngvi_lit/ or nbs/ differ from what nbdev_export / nbdev_clean write
	$(BIN)/nbdev_export
	@if [ -n "$$(git status --porcelain -- ngvi_lit)" ]; then git status --short -- ngvi_lit; git --no-pager diff --stat -- ngvi_lit; \
	  echo "ngvi_lit/ is out of sync with nbs/: run nbdev_export and commit"; exit 1; fi
	$(BIN)/nbdev_clean
	@if [ -n "$$(git status --porcelain -- nbs)" ]; then git status --short -- nbs; \
	  echo "notebooks are not clean: run nbdev_clean and commit"; exit 1; fi
	$(BIN)/python docs/readme.py --check
	$(BIN)/python docs/build.py --sidebar-only
	@if [ -n "$$(git status --porcelain -- nbs/sidebar.yml)" ]; then \
	  echo "nbs/sidebar.yml is stale: run 'python docs/build.py --sidebar-only' and commit"; exit 1; fi

nbtest: $(DEV_STAMP)  ## run the notebooks (skips #| slow cells)
	$(TEST_ENV) $(BIN)/nbdev_test --n_workers $(NBDEV_WORKERS) --timing

pytest: $(DEV_STAMP)  ## run tests/ (skips tests marked slow)
	$(TEST_ENV) $(BIN)/python -m pytest -q -m "not slow" tests

test: sync-check nbtest pytest  ## everything CI asserts, fast subset

# OpenBLAS kernels round differently (SkylakeX: AVX-512, Haswell: AVX2); tests must hold under each. A core type the
# CPU lacks is skipped, and said. The name OpenBLAS reports is printed, to show the variable took effect.
CORETYPES ?= Haswell SkylakeX
CORENAME := import ctypes, glob, os, numpy; libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__), '..', \
  'numpy.libs', '*openblas*.so*')); L = ctypes.CDLL(libs[0]) if libs else None; \
  f = next((getattr(L, n) for n in ('scipy_openblas_get_corename64_', 'openblas_get_corename64_', \
  'openblas_get_corename') if L is not None and hasattr(L, n)), None); \
  f is not None and setattr(f, 'restype', ctypes.c_char_p); print(f().decode() if f else 'unknown')
test-coretypes: $(DEV_STAMP)  ## pytest (not slow) once per OpenBLAS core type the CPU supports (Haswell: avx2, SkylakeX: avx512f)
	@flags=" $$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "; \
	for ct in $(CORETYPES); do \
	  case $$ct in SkylakeX) need=avx512f;; Haswell) need=avx2;; *) need=;; esac; \
	  if [ -n "$$need" ] && [[ "$$flags" != *" $$need "* ]]; then \
	    echo "== OPENBLAS_CORETYPE=$$ct skipped: this CPU lacks $$need (or has no /proc/cpuinfo)"; continue; fi; \
	  echo "== OPENBLAS_CORETYPE=$$ct (OpenBLAS core: $$(OPENBLAS_CORETYPE=$$ct $(BIN)/python -c "$(CORENAME)"))"; \
	  OPENBLAS_CORETYPE=$$ct $(TEST_ENV) $(BIN)/python -m pytest -q -m "not slow" tests || exit 1; \
	done

test-slow: $(DEV_STAMP)  ## everything, slow cells and slow tests included
	$(MAKE) sync-check
	$(TEST_ENV) $(BIN)/nbdev_test --n_workers $(NBDEV_WORKERS) --flags "notest slow" --timing
	$(TEST_ENV) $(BIN)/python -m pytest -q tests

readme: $(DEV_STAMP)  ## regenerate README.md from nbs/index.ipynb
	$(BIN)/python docs/readme.py

docs: $(DEV_STAMP)  ## render the site into _docs/ (offline, no Quarto)
	$(BIN)/python docs/build.py

docs-check: $(DEV_STAMP)  ## open every page in headless Chromium: math typeset, images load, no page missing
	$(BIN)/python docs/check.py

lab: $(DEV_STAMP)  ## JupyterLab on 127.0.0.1 only
	$(BIN)/jupyter lab --no-browser --ip 127.0.0.1 --port 8899 --allow-root --notebook-dir nbs

bench: $(BENCH_STAMP)  ## every benchmark (minutes); results in bench/results/
	$(BIN)/python bench/run.py

bench-quick: $(DEV_STAMP)  ## smoke run of the benchmarks (under a minute)
	$(BIN)/python bench/run.py --quick

dist: $(DEV_STAMP)  ## build a wheel into dist/
	$(BIN)/python -m pip wheel --no-deps -w dist .

clean:  ## remove build outputs (keeps .venv)
	rm -rf _docs _proc docs/_build docs/_stage build dist *.egg-info
