"""Packaging smoke tests: the package imports in a fresh interpreter and every module's `__all__` is honest."""
import json
import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules():
    import ngvi_lit
    return sorted(m.name for m in pkgutil.iter_modules(ngvi_lit.__path__) if not m.name.startswith('_'))


def test_fresh_interpreter_import_and_all():
    code = (
        "import importlib, json, pkgutil, ngvi_lit\n"
        "out = {'version': ngvi_lit.__version__, 'missing': {}}\n"
        "for m in pkgutil.iter_modules(ngvi_lit.__path__):\n"
        "    if m.name.startswith('_'): continue\n"
        "    mod = importlib.import_module('ngvi_lit.' + m.name)\n"
        "    names = getattr(mod, '__all__', None)\n"
        "    if names is None: out['missing'][m.name] = ['<no __all__>']; continue\n"
        "    bad = [n for n in names if not hasattr(mod, n)]\n"
        "    if bad: out['missing'][m.name] = bad\n"
        "print(json.dumps(out))\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd='/')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['version'] and out['missing'] == {}


def test_every_module_has_a_notebook():
    nbs = (ROOT / 'nbs').glob('*.ipynb')
    exported = set()
    for nb in nbs:
        for cell in json.loads(nb.read_text())['cells']:
            src = ''.join(cell['source'])
            for line in src.splitlines():
                if line.replace(' ', '').startswith('#|default_exp'):
                    exported.add(line.split('default_exp', 1)[1].strip())
    assert set(_modules()) <= exported | {'__main__'}, set(_modules()) - exported


def test_shipped_data_is_package_data():
    import ngvi_lit
    data = Path(ngvi_lit.__file__).parent / 'data'
    assert {'diabetes.csv', 'breast_cancer.csv'} <= {p.name for p in data.iterdir()}


@pytest.mark.slow
def test_wheel_contains_modules_and_data(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', str(tmp_path), str(ROOT)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    whl, = tmp_path.glob('ngvi_lit-*.whl')
    names = set(zipfile.ZipFile(whl).namelist())
    for m in _modules() + ['__init__', '__main__', '_modidx']:
        assert f'ngvi_lit/{m}.py' in names, m
    assert 'ngvi_lit/data/diabetes.csv' in names and 'ngvi_lit/data/breast_cancer.csv' in names
