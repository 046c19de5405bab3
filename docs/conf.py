"""Sphinx configuration for the ngvi_lit site (used by docs/build.py; sources are staged in docs/_stage)."""
import configparser, os
from pathlib import Path

DOCS = Path(__file__).resolve().parent
_ini = configparser.ConfigParser(); _ini.read(DOCS.parent/'settings.ini'); _s = _ini['DEFAULT']
STAGE = Path(os.environ.get('NGVI_DOCS_STAGE', DOCS/'_stage'))
# myst-nb writes notebook outputs (images) to <outdir>/../jupyter_execute, which for _docs/ is the repository root;
# setup() below moves them into the (ignored) scratch folder docs/build.py passes, docs/_build/ by default
NB_OUTPUTS = Path(os.environ.get('NGVI_DOCS_NB_OUTPUTS', DOCS/'_build'/'jupyter_execute'))

project = _s.get('lib_name', 'ngvi_lit')
author = _s.get('author', '')
copyright = _s.get('copyright', '')
release = version = _s.get('version', '')
root_doc = 'index'
extensions = ['myst_nb']                       # myst-nb brings myst-parser and uses sphinx.ext.mathjax
exclude_patterns = ['_mathjax', '**/.ipynb_checkpoints']

# --- notebooks: never execute, render the stored outputs
nb_execution_mode = 'off'
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'attrs_block']
myst_dmath_double_inline = True
# Links are written as nbdev/Quarto writes them (`checks.html#check_array`); keep them as plain
# hrefs instead of Sphinx cross-references (docs/check.py verifies every internal link resolves).
myst_all_links_external = True
suppress_warnings = ['myst.header']            # show_doc's `###` right after a `#` title is fine

# --- HTML
html_theme = 'sphinx_book_theme'
html_title = project
html_static_path = [str(DOCS/'_static'), str(STAGE/'_mathjax')]   # the latter holds mathjax/
html_css_files = ['custom.css']
html_theme_options = {
    'home_page_in_toc': True,
    'show_toc_level': 2,
    'use_download_button': False,
    'use_fullscreen_button': False,
    'navigation_with_keys': False,
}
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None

# --- math: MathJax 3 from npm, served from _static (no CDN). SVG output needs no web fonts.
mathjax_path = 'mathjax/tex-svg.js'
mathjax3_config = {
    # without noerrors/noundefined every TeX mistake becomes an merror node, which check.py catches
    'tex': {'tags': 'ams', 'processEscapes': True, 'packages': {'[-]': ['noerrors', 'noundefined']}},
    'svg': {'fontCache': 'global'},
}


def _nb_outputs_in_build(app):
    "Point myst-nb's output folder at NB_OUTPUTS (myst-nb sets it from the outdir in its own builder-inited handler)."
    cfg = getattr(app.env, 'mystnb_config', None)
    if cfg is not None: app.env.mystnb_config = cfg.copy(output_folder=str(NB_OUTPUTS))


def setup(app):
    app.connect('builder-inited', _nb_outputs_in_build, priority=900)   # after myst-nb's handler (priority 500)
