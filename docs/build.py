"""Build the ngvi_lit website offline, without Quarto.

    .venv/bin/python docs/build.py                        # nbs/ -> _docs/  (what `make docs` runs)
    .venv/bin/python docs/build.py --nbs /tmp/x/nbs --out /tmp/x/_docs --allow-missing-index

Pipeline (every step offline):
1. nbdev's own notebook processing (the per-notebook driver that `nbdev.serve.proc_nbs` runs,
   with nbdev's `FilterDefaults` processors): adds `show_doc` for exported symbols, executes
   them and the directives, writes front matter; results in `_proc/`.
2. A small staging step (this file, outside nbs/) adapts the processed notebooks for Sphinx and
   myst-nb: front matter -> `# title` + description, show_doc output cleaned (anchors nbdev's
   links expect, no Quarto link attributes), Quarto callouts -> MyST admonitions, `#|` cell
   options honoured then stripped, nbdev's absolute doc links made relative. Pages are named as
   nbdev/Quarto name them (`00_checks.ipynb` -> `checks.html`), index first, then file-name order,
   then a generated "API reference" page. Results in `docs/_stage/`.
3. Sphinx (conf in docs/conf.py: sphinx-book-theme, myst-nb with execution off, MathJax 3 from npm
   copied into the site's static files) renders `_docs/`; then the output is grepped for CDN URLs.

It also refreshes `nbs/sidebar.yml` (nbdev's Quarto sidebar) so the Quarto config stays valid.
"""
from __future__ import annotations
import argparse, configparser, copy, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

DOCS = Path(__file__).resolve().parent          # docs/  (conf.py, package.json, _static/)
ROOT = DOCS.parent                               # the repository
MATHJAX = DOCS/'node_modules'/'mathjax'/'es5'    # installed by `npm ci --prefix docs`
HIDDEN_OPTS = {'hide', 'export', 'exporti', 'default_exp'}  # nbdev directives that hide a cell

# ----------------------------------------------------------------------------- notebooks & names

def settings() -> configparser.SectionProxy:
    "The repo's settings.ini ([DEFAULT] section)."
    cp = configparser.ConfigParser(); cp.read(ROOT/'settings.ini')
    return cp['DEFAULT']

def page_name(nb: Path) -> str:
    "Page stem nbdev and Quarto give a notebook: lower case, leading `NN_` dropped (00_checks -> checks)."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.name.lower()).rsplit('.', 1)[0]

def notebooks(nbs: Path) -> list[Path]:
    "Notebooks to publish, in reading order: index.ipynb first, then by file name; `_`/`.` names skipped."
    nbl = sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    return sorted(nbl, key=lambda p: p.name != 'index.ipynb')  # stable: index first, rest by name

def expected_pages(nbs: Path) -> dict[str, Path]:
    "{page stem: notebook}; fails on two notebooks mapping to the same page."
    res = {}
    for nb in notebooks(nbs):
        stem = page_name(nb)
        if stem in res: raise SystemExit(f"build: {nb.name} and {res[stem].name} both become {stem}.html; rename one")
        res[stem] = nb
    return res

def write_sidebar(nbs: Path, nbl: list[Path]) -> bool:
    "Write nbdev's Quarto sidebar (nbs/sidebar.yml) listing the notebooks in order; True if it changed."
    text = 'website:\n  sidebar:\n    contents:\n' + ''.join(f'      - {p.name}\n' for p in nbl)
    f = nbs/'sidebar.yml'
    if f.exists() and f.read_text() == text: return False
    f.write_text(text); return True

# ----------------------------------------------------------------------------- 1. nbdev processing

def nbdev_process(nbl: list[Path], proc: Path, force: bool = False) -> list[Path]:
    "Run nbdev's processing of each notebook into `proc/` (cached by mtime); return the processed paths."
    import nbdev.serve_drv
    from fastcore.parallel import parallel
    from nbdev.processors import FilterDefaults
    proc.mkdir(parents=True, exist_ok=True)
    # Re-process when the notebook, settings.ini, nbdev itself or the symbol index (_modidx.py,
    # which drives cross-links and source links) is newer than the processed copy.
    deps = [ROOT/'settings.ini', Path(nbdev.serve_drv.__file__), ROOT/settings().get('lib_path', 'ngvi_lit')/'_modidx.py']
    dep_mtime = max((d.stat().st_mtime for d in deps if d.exists()), default=0)
    todo = [(src, proc/src.name, FilterDefaults) for src in nbl
            if force or not (proc/src.name).exists()
            or (proc/src.name).stat().st_mtime < max(src.stat().st_mtime, dep_mtime)]
    if todo:
        print(f"nbdev: processing {len(todo)} notebook(s): {' '.join(s.name for s,_,_ in todo)}", flush=True)
        # spawned workers, as proc_nbs does: each notebook's show_doc cells run in a fresh process
        errs = [e for e in parallel(_worker(), todo, n_workers=min(2, len(todo)), pause=0.01, method='spawn') if e]
        if errs:
            raise SystemExit('build: nbdev processing failed (it executes exported cells, show_doc cells and any '
                             'cell containing an import, so keep imports in cells of their own):\n\n' + '\n\n'.join(errs))
    return [proc/p.name for p in nbl]

def _worker():
    "`_proc_one` as the importable `build._proc_one` (spawned workers cannot pickle `__main__` functions)."
    sys.path.insert(0, str(DOCS)) if str(DOCS) not in sys.path else None
    import build
    return build._proc_one

def _proc_one(item) -> str | None:
    "nbdev's per-notebook driver (what proc_nbs runs); returns an error message instead of raising."
    import nbdev.serve_drv
    try: nbdev.serve_drv.main(item)
    except Exception as e:
        msg = str(e).strip().splitlines()
        cause = f'\n    caused by {type(e.__cause__).__name__}: {e.__cause__}' if e.__cause__ else ''
        return f"{item[0].name}: {msg[0] if msg else type(e).__name__}\n" + '\n'.join('    ' + l for l in msg[1:8]) + cause

# ----------------------------------------------------------------------------- 2. staging helpers

_re_opt = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def split_options(src: str) -> tuple[dict, str]:
    "Leading `#| key: value` (or `#| flag`) lines of a code cell -> ({key: value}, remaining source)."
    lines, opts = src.splitlines(), {}
    while lines and (m := _re_opt.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip('\'"') or True
        lines.pop(0)
    return opts, '\n'.join(lines)

def is_false(v) -> bool: return str(v).strip().lower() in ('false', 'no', '0')

_re_link_attrs = re.compile(r'(\]\([^)\s]*\))\{[^}\n]*\}')   # [text](url){target="_blank" ...} -> [text](url)
_re_source = re.compile(r'^\[source\]\(([^)\s]+)\)(\{[^}\n]*\})?\s*$', re.M)
_re_sd_head = re.compile(r'^(#{2,6})\s+(.+?)\s*$', re.M)

class Linker:
    "Rewrite links: nbdev's absolute doc URLs and notebook links become relative page links."
    def __init__(self, nbl: list[Path]):
        s = settings()
        self.base = (s.get('doc_host', '').rstrip('/') + '/' + s.get('doc_baseurl', '').strip('/')).rstrip('/') + '/'
        self.pages = {p.name: page_name(p) for p in nbl}
    def __call__(self, md: str) -> str:
        md = _re_link_attrs.sub(r'\1', md)
        # nbdev links `name` even inside link text: [[`name`](doc url)](author url) -> [`name`](author url)
        md = re.sub(r'\[\[(`[^`]+`)\]\([^)\s]+\)\]\(', r'[\1](', md)
        if self.base != '/': md = md.replace('](' + self.base, '](')
        # [text](02_fisher.ipynb#x) -> [text](fisher.html#x); links stay plain (myst_all_links_external)
        return re.sub(r'\]\(([\w.-]+)\.ipynb(#[^)\s]*)?\)',
                      lambda m: f"]({self.pages.get(m.group(1)+'.ipynb', page_name(Path(m.group(1)+'.ipynb')))}.html{m.group(2) or ''})", md)

def clean_show_doc(md: str) -> tuple[str, str | None]:
    "show_doc markdown -> (MyST markdown with the anchor nbdev links expect, symbol name or None)."
    md = re.sub(r'^\s*---\s*\n', '', md)                        # leading rule (would be a transition)
    md = _re_source.sub(r'<a class="nbdev-source" href="\1">source</a>', md)
    name = None
    m = _re_sd_head.search(md)
    if m:
        name = m.group(2).replace('\\_', '_').strip('`*')
        # nbdev's links point at `page.html#name.lower()`; Sphinx would make `#name-lower` ids
        anchor = f'<div class="nbdev-anchor" id="{name.lower()}"></div>\n\n'
        md = md[:m.start()] + anchor + md[m.start():]
    return md.strip() + '\n', name

_re_fence = re.compile(r'^(\s*)(`{3,}|~{3,})')
_re_div_open = re.compile(r'^:{3,}\s*\{([^}]*)\}\s*$|^:{3,}\s*([\w-]+)\s*$')
_re_div_close = re.compile(r'^:{3,}\s*$')
_callouts = {'note', 'warning', 'important', 'tip', 'caution'}

def convert_divs(md: str) -> str:
    "Pandoc/Quarto fenced divs -> MyST: `:::{.callout-note}` -> `:::{note}`, other divs -> `{container}`."
    root, stack, fence = [], [], None
    for line in md.split('\n'):
        cur = stack[-1][2] if stack else root
        if fence is None and (m := _re_fence.match(line)): fence = m.group(2)[0]
        elif fence and line.strip().startswith(fence * 3): fence = None
        if fence is None and (m := _re_div_open.match(line)):
            stack.append((m.group(1) if m.group(1) is not None else '.' + m.group(2), None, [])); continue
        if fence is None and stack and _re_div_close.match(line):
            attrs, _, kids = stack.pop(); (stack[-1][2] if stack else root).append((attrs, kids)); continue
        cur.append(line)
    while stack:  # unclosed div: keep its content
        attrs, _, kids = stack.pop(); (stack[-1][2] if stack else root).append((attrs, kids))

    def height(items): return max((1 + height(k) for a, k in (i for i in items if isinstance(i, tuple))), default=0)
    def emit(items):
        out = []
        for it in items:
            if isinstance(it, str): out.append(it); continue
            attrs, kids = it
            colons = ':' * (3 + height(kids))                      # outer fences longer than inner ones
            classes = re.findall(r'\.([\w-]+)', attrs)
            title = re.search(r'title="([^"]*)"', attrs)
            kind = next((c[8:] for c in classes if c.startswith('callout-') and c[8:] in _callouts), None)
            body = emit(kids)
            if kind:
                first = next((i for i, l in enumerate(body) if l.strip()), None)
                if not title and first is not None and re.match(r'^#{1,6}\s', body[first]):  # `## Title` inside
                    title = re.match(r'^#{1,6}\s+(.*)$', body[first]); body = body[first+1:]
                head = [f'{colons}{{admonition}} {title.group(1).strip()}', f':class: {kind}'] if title else [f'{colons}{{{kind}}}']
            else:
                head = [f'{colons}{{container}} ' + ' '.join(classes)] if classes else [f'{colons}{{container}}']
            out += head + body + [colons]
        return out
    return '\n'.join(emit(root))

def md_cell(src: str) -> dict: return {'cell_type': 'markdown', 'metadata': {}, 'source': src}

def _text(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')

# ----------------------------------------------------------------------------- 2. staging

def stage_notebook(nb: dict, link, api: list) -> tuple[dict, str]:
    "Adapt one nbdev-processed notebook for myst-nb; append (name, markdown) show_doc entries to `api`."
    cells, fm = [], {}
    for c in nb['cells']:
        src = _text(c.get('source'))
        if c['cell_type'] == 'raw' and not fm and src.strip().startswith('---'):
            import yaml
            fm = yaml.safe_load(src.strip().strip('-')) or {}; continue
        if c['cell_type'] == 'markdown':
            if src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
            cells.append(md_cell(convert_divs(link(src)))); continue
        if c['cell_type'] != 'code': cells.append(c); continue
        opts, code = split_options(src)
        if opts.keys() & HIDDEN_OPTS or is_false(opts.get('include', True)): continue
        outs = c.get('outputs', [])
        if str(opts.get('output', '')).lower() == 'asis':           # show_doc and other "asis" cells
            if not is_false(opts.get('echo', True)) and code.strip():
                cells.append({**c, 'source': code, 'outputs': []})
            for o in outs:
                md = _text(o.get('data', {}).get('text/markdown')) or _text(o.get('text'))
                if not md.strip(): continue
                if re.search(r'^show_doc\(', code, re.M):
                    md, name = clean_show_doc(md)
                    if name: api.append((name, md))
                cells.append(md_cell(convert_divs(link(md))))
            continue
        c = copy.deepcopy(c); c['source'] = code
        tags = c.setdefault('metadata', {}).setdefault('tags', [])
        if is_false(opts.get('echo', True)): tags.append('remove-input')
        if is_false(opts.get('output', True)): tags.append('remove-output')
        for o in c.get('outputs', []):                                 # add_links touched these too
            if 'text/markdown' in o.get('data', {}): o['data']['text/markdown'] = link(_text(o['data']['text/markdown']))
        if code.strip() or c.get('outputs'): cells.append(c)
    title = str(fm.get('title') or '').strip()
    head = f'# {title}\n' if title else ''
    if fm.get('description'): head += f"\n{{.description}}\n{str(fm['description']).strip()}\n"
    if head: cells.insert(0, md_cell(head))
    for i, c in enumerate(cells): c['id'] = f'c{i:03d}'                 # nbformat 4.5 wants ids
    meta = dict(nb.get('metadata', {}))
    meta.setdefault('kernelspec', {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'})
    meta.setdefault('language_info', {'name': 'python'})
    return {'cells': cells, 'metadata': meta, 'nbformat': 4, 'nbformat_minor': 5}, title

def toctree(stems: list[str]) -> str:
    return '```{toctree}\n:hidden:\n:maxdepth: 2\n\n' + '\n'.join(stems) + '\n```\n'

def api_page(sections: list[tuple[str, str, list]]) -> str:
    "The API reference: every show_doc entry, grouped by page, headed by a link to where it is derived."
    out = ['# API reference', '',
           'Every documented symbol, in reading order; each name links to its derivation.', '']
    for stem, title, entries in sections:
        if not entries: continue
        out += [f'## {title or stem}', '', f'From [{title or stem}]({stem}.html).', '']
        for name, md in entries:
            md = re.sub(r'<div class="nbdev-anchor"[^>]*></div>\n*', '', md)
            md = _re_sd_head.sub(lambda m: f'### [`{name}`]({stem}.html#{name.lower()})', md, count=1)
            out += [md, '']
    if not any(e for _, _, e in sections): out += ['No exported symbols yet.', '']
    return '\n'.join(out)

def stage(nbl: list[Path], procd: list[Path], nbs: Path, st: Path, allow_missing_index: bool) -> list[str]:
    "Write the Sphinx sources into `st`; return the page stems in reading order."
    if st.exists(): shutil.rmtree(st)
    st.mkdir(parents=True)
    link = Linker(nbl)
    stems, sections, docs = [], [], {}
    for src, p in zip(nbl, procd):
        api = []
        doc, title = stage_notebook(json.loads(p.read_text()), link, api)
        stem = page_name(src)
        docs[stem] = doc; stems.append(stem); sections.append((stem, title, api))
    if 'index' not in docs:
        if not allow_missing_index:
            raise SystemExit(f"build: {nbs/'index.ipynb'} is missing; it is the home page (and the README source)")
        s = settings()
        (st/'index.md').write_text(f"# {s.get('lib_name', 'Home')}\n\n{s.get('description', '')}\n\n"
                                    "*(placeholder home page: nbs/index.ipynb does not exist yet)*\n")
    children = [s for s in stems if s != 'index'] + ['api']
    for stem, doc in docs.items():
        if stem == 'index': doc['cells'].append(md_cell(toctree(children)) | {'id': 'toctree'})
        (st/f'{stem}.ipynb').write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    if 'index' not in docs: (st/'index.md').write_text((st/'index.md').read_text() + '\n' + toctree(children))
    (st/'api.md').write_text(api_page(sections))
    # image files referenced from markdown (e.g. nbs/images/x.png) keep their relative paths
    for f in nbs.rglob('*'):
        if f.suffix.lower() in {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp'} \
           and not any(part.startswith(('_', '.')) for part in f.relative_to(nbs).parts):
            (st/f.relative_to(nbs)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, st/f.relative_to(nbs))
    return ['index'] + children

# ----------------------------------------------------------------------------- 3. MathJax + Sphinx

def stage_mathjax(dest: Path) -> None:
    "Copy MathJax 3 (npm) into `dest/mathjax`, installing it with `npm ci` first if needed."
    if not (MATHJAX/'tex-svg.js').exists():
        print('npm: installing MathJax 3 (npm ci --prefix docs)', flush=True)
        subprocess.run(['npm', 'ci', '--prefix', str(DOCS), '--no-audit', '--no-fund'], check=True)
    out = dest/'mathjax'
    if out.exists(): shutil.rmtree(out)
    # tex-svg.js is the whole engine (SVG output needs no web fonts); the rest is loaded on demand:
    # TeX extensions by \require/autoload, the menu, and the accessibility/speech parts.
    for part in ['tex-svg.js', 'input/tex/extensions', 'ui', 'a11y', 'sre']:
        s = MATHJAX/part
        (out/part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(s, out/part) if s.is_dir() else shutil.copy2(s, out/part)
    # The bundle carries dormant jsdelivr URLs (speech-rule-engine fallbacks used only by old IE or
    # Node); point them nowhere so the site holds no CDN address at all (verified by cdn_grep).
    for f in out.rglob('*.js'):
        t = f.read_text(encoding='utf-8')
        if 'cdn.jsdelivr.net' in t: f.write_text(t.replace('https://cdn.jsdelivr.net/npm/', 'offline:/'), encoding='utf-8')

_re_cdn = re.compile(r'(?:https?:)?//[\w.-]*(?:cdn|jsdelivr|unpkg|googleapis|gstatic|cloudflare|polyfill\.io|bootstrapcdn|requirejs\.org)[\w./@%+-]*', re.I)

def cdn_grep(out: Path) -> list[str]:
    "Every CDN-looking URL in the site's html/js/css/json files, as 'file: url'."
    hits = []
    for f in sorted(out.rglob('*')):
        if f.suffix in {'.html', '.js', '.css', '.json', '.txt', '.svg'} and f.is_file():
            for m in sorted(set(_re_cdn.findall(f.read_text(encoding='utf-8', errors='replace')))):
                hits.append(f'{f.relative_to(out)}: {m}')
    return hits

def sphinx(st: Path, out: Path, doctrees: Path, strict: bool) -> int:
    "Render `st` into `out` with docs/conf.py; returns Sphinx's exit status."
    for d in (out, doctrees):
        if d.exists():
            if any(d.iterdir()) and not ((d/'.buildinfo').exists() or d.name == 'doctrees' or (d/'environment.pickle').exists()):
                raise SystemExit(f"build: refusing to wipe {d}: it does not look like a Sphinx output directory")
            shutil.rmtree(d)                      # a fresh build: no stale pages from renamed notebooks
    os.environ['NGVI_DOCS_STAGE'] = str(st)       # conf.py reads it (static files live in the stage)
    # myst-nb's notebook outputs go next to the doctrees (an ignored scratch folder), not to <out>/../jupyter_execute
    nb_out = doctrees.parent/'jupyter_execute'
    if nb_out.exists(): shutil.rmtree(nb_out)     # no stale images from renamed notebooks
    os.environ['NGVI_DOCS_NB_OUTPUTS'] = str(nb_out)
    args = ['-b', 'html', '-q', '-c', str(DOCS), '-d', str(doctrees), str(st), str(out)]
    if strict: args[:0] = ['-W', '--keep-going']
    from sphinx.cmd.build import build_main
    return build_main(args)

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nbs', type=Path, default=None, help='notebooks folder (default: nbs/)')
    ap.add_argument('--out', type=Path, default=None, help='site folder (default: _docs/)')
    ap.add_argument('--work', type=Path, default=None,
                    help='scratch folder for proc/stage/doctrees (default: _proc/, docs/_stage/, docs/_build/; '
                         '<out>_work/ when --nbs or --out is given)')
    ap.add_argument('--force', action='store_true', help='re-run nbdev processing of every notebook')
    ap.add_argument('--no-strict', dest='strict', action='store_false', help='do not fail on Sphinx warnings')
    ap.add_argument('--allow-missing-index', action='store_true',
                    help='make a placeholder home page if index.ipynb is missing (for tests)')
    ap.add_argument('--sidebar-only', action='store_true', help='only refresh nbs/sidebar.yml (fast; for hooks/CI)')
    a = ap.parse_args(argv)
    t0 = time.time()
    os.chdir(ROOT)                                # nbdev finds settings.ini from the working directory
    nbs = (a.nbs or ROOT/settings().get('nbs_path', 'nbs')).resolve()
    out = (a.out or ROOT/settings().get('doc_path', '_docs')).resolve()
    if a.work: proc, st, dt = a.work/'_proc', a.work/'_stage', a.work/'doctrees'
    elif a.nbs or a.out: w = out.parent/(out.name + '_work'); proc, st, dt = w/'_proc', w/'_stage', w/'doctrees'
    else: proc, st, dt = ROOT/'_proc', DOCS/'_stage', DOCS/'_build'/'doctrees'
    pages = expected_pages(nbs)
    nbl = list(pages.values())
    if not nbl: raise SystemExit(f"build: no notebooks in {nbs}")
    if write_sidebar(nbs, nbl): print(f"updated {nbs/'sidebar.yml'}")
    if a.sidebar_only: return 0
    if 'index' not in pages and not a.allow_missing_index:
        raise SystemExit(f"build: {nbs/'index.ipynb'} is missing; it is the home page (and the README source)")
    procd = nbdev_process(nbl, proc.resolve(), a.force); t1 = time.time()
    stems = stage(nbl, procd, nbs, st.resolve(), a.allow_missing_index)
    stage_mathjax(st.resolve()/'_mathjax')
    rc = sphinx(st.resolve(), out, dt.resolve(), a.strict)
    stray = out.parent/'jupyter_execute'
    if stray.exists() and stray.stat().st_mtime >= t0:
        print(f"build: myst-nb wrote {stray} (outside the scratch folder); see NB_OUTPUTS in docs/conf.py", file=sys.stderr)
        rc = rc or 1
    hits = cdn_grep(out) if out.exists() else []
    for h in hits: print('CDN URL in output:', h, file=sys.stderr)
    print(f"docs: {len(stems)} pages ({', '.join(stems)}) -> {out}  "
          f"[nbdev {t1-t0:.1f}s, stage+sphinx {time.time()-t1:.1f}s]")
    if rc: print(f"build: Sphinx failed (exit {rc}); see the warnings above "
                 "(--no-strict to build anyway)", file=sys.stderr)
    if hits: print("build: CDN URLs found in the output (the site must work offline)", file=sys.stderr)
    return 1 if rc or hits else 0

if __name__ == '__main__': sys.exit(main())
