"Unit tests for the docs staging and README code in docs/ (fast, no Sphinx, no browser)."
import json, sys
from pathlib import Path
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'docs'))
import build, readme  # noqa: E402

@pytest.mark.parametrize('nb,page', [('00_checks.ipynb', 'checks'), ('index.ipynb', 'index'),
                                     ('11_ngvi_vs_euclidean.ipynb', 'ngvi_vs_euclidean'), ('16_Benchmarks.ipynb', 'benchmarks')])
def test_page_name(nb, page): assert build.page_name(Path(nb)) == page

def test_reading_order_and_sidebar(tmp_path):
    for n in ['02_b.ipynb', '00_a.ipynb', 'index.ipynb', '_scratch.ipynb', '.hidden.ipynb']: (tmp_path/n).write_text('{}')
    nbl = build.notebooks(tmp_path)
    assert [p.name for p in nbl] == ['index.ipynb', '00_a.ipynb', '02_b.ipynb']
    assert build.write_sidebar(tmp_path, nbl) and not build.write_sidebar(tmp_path, nbl)  # idempotent
    assert (tmp_path/'sidebar.yml').read_text().splitlines()[3:] == ['      - index.ipynb', '      - 00_a.ipynb', '      - 02_b.ipynb']

def test_duplicate_page_names_fail(tmp_path):
    for n in ['01_fit.ipynb', '09_fit.ipynb']: (tmp_path/n).write_text('{}')
    with pytest.raises(SystemExit, match='both become fit.html'): build.expected_pages(tmp_path)

def test_split_options():
    opts, src = build.split_options('#| echo: false\n#|output:false\n#| hide\nx = 1\n#| not an option')
    assert opts == {'echo': 'false', 'output': 'false', 'hide': True} and src == 'x = 1\n#| not an option'

def test_callouts_become_admonitions():
    md = ':::{.callout-note}\n## Why\ntext $x$\n:::\n\n::: {.callout-warning title="Careful"}\nw\n:::'
    out = build.convert_divs(md)
    assert ':::{admonition} Why\n:class: note\ntext $x$\n:::' in out
    assert ':::{admonition} Careful\n:class: warning\nw\n:::' in out

def test_nested_divs_and_code_fences():
    out = build.convert_divs('::: {.a}\n:::{.callout-tip}\nx\n:::\n:::\n```\n:::{.callout-note}\n```')
    assert out.splitlines()[:5] == ['::::{container} a', ':::{tip}', 'x', ':::', '::::']
    assert out.endswith('```\n:::{.callout-note}\n```')          # untouched inside a code fence

def test_show_doc_cleaned():
    md = ('---\n\n[source](https://github.com/o/r/blob/main/m.py#L3){target="_blank" style="float:right"}\n\n'
          '### MvNormal.from_precision\n\n```python\ndef f(x)\n```\n\n*Doc.*')
    out, name = build.clean_show_doc(md)
    assert name == 'MvNormal.from_precision' and not out.startswith('---') and 'target=' not in out
    assert '<div class="nbdev-anchor" id="mvnormal.from_precision"></div>' in out
    assert '<a class="nbdev-source" href="https://github.com/o/r/blob/main/m.py#L3">source</a>' in out

def test_links_relative():
    link = build.Linker([Path('index.ipynb'), Path('02_fisher.ipynb')])
    md = ('[`f`](https://ngvi-lit.github.io/ngvi_lit/fisher.html#f) [t](02_fisher.ipynb#sec) '
          '[[`g`](https://ngvi-lit.github.io/ngvi_lit/fisher.html#g)](02_fisher.ipynb) [x](https://a.b/c){target="_blank"}')
    assert link(md) == '[`f`](fisher.html#f) [t](fisher.html#sec) [`g`](fisher.html) [x](https://a.b/c)'

def test_stage_notebook_options_and_front_matter():
    nb = {'metadata': {}, 'cells': [
        {'cell_type': 'raw', 'metadata': {}, 'source': '---\ntitle: T\ndescription: D $x$\noutput-file: t.html\n---\n'},
        {'cell_type': 'code', 'metadata': {}, 'outputs': [], 'source': '#| echo: false\nprint(1)'},
        {'cell_type': 'code', 'metadata': {}, 'outputs': [], 'source': '#| include: false\ny = 2'},
        {'cell_type': 'code', 'metadata': {}, 'source': '#| echo: false\n#| output: asis\nshow_doc(f)',
         'outputs': [{'output_type': 'execute_result', 'data': {'text/markdown': '---\n\n### f\n\n*Doc.*'}}]}]}
    api = []
    doc, title = build.stage_notebook(nb, build.Linker([]), api)
    cells = doc['cells']
    assert title == 'T' and cells[0]['source'].startswith('# T\n') and 'D $x$' in cells[0]['source']
    assert cells[1]['source'] == 'print(1)' and cells[1]['metadata']['tags'] == ['remove-input']
    assert cells[2]['cell_type'] == 'markdown' and '### f' in cells[2]['source'] and len(cells) == 3
    assert [n for n, _ in api] == ['f']

def test_readme_render(tmp_path):
    nb = {'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5, 'cells': [
        {'cell_type': 'markdown', 'metadata': {}, 'source': '# Lib\n\n> Does $x$ things'},
        {'cell_type': 'code', 'metadata': {}, 'outputs': [], 'source': '#| hide\nfrom nbdev.showdoc import *'},
        {'cell_type': 'markdown', 'metadata': {}, 'source': 'See [ch](02_b.ipynb) and $$a=b$$'},
        {'cell_type': 'code', 'metadata': {}, 'source': '1+1',
         'outputs': [{'output_type': 'execute_result', 'data': {'text/plain': ['2']}, 'metadata': {}}]},
        {'cell_type': 'code', 'metadata': {}, 'source': 'plot()',
         'outputs': [{'output_type': 'display_data', 'data': {'image/png': 'AAA', 'text/plain': '<Figure>'}, 'metadata': {}}]}]}
    (tmp_path/'index.ipynb').write_text(json.dumps(nb))
    text = readme.render(tmp_path/'index.ipynb')
    assert text.startswith('# Lib\n') and '> Does $x$ things' in text and 'nbdev.showdoc' not in text
    assert '[ch](nbs/02_b.ipynb)' in text and '$$a=b$$' in text
    assert '```python\n1+1\n```\n\n```\n2\n```' in text and '<Figure>' not in text
    assert readme.render(tmp_path/'index.ipynb') == text                     # deterministic
