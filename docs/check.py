"""Open every page of the built site in headless Chromium and fail on anything a reader would notice.

    .venv/bin/python docs/check.py                  # checks _docs/ against nbs/ (what `make docs-check` runs)
    .venv/bin/python docs/check.py --nbs DIR --out DIR

For each HTML page (Debian's /usr/bin/chromium driven by playwright, network cut: every request that
is not file://, data: or blob: is blocked and counted) it fails (exit 1, naming the page) when:
- a page expected from nbs/*.ipynb (non-underscore names), the home page or the API page is missing;
- any request leaves the machine (CDN, fonts, analytics ...), or the page throws a JavaScript error;
- math is not typeset: every myst math node (span.math / div.math) must hold an mjx-container after
  MathJax's startup promise resolves, no MathJax error node, and no raw $...$ or \\begin{...} left
  in the text outside code;
- an <img> is broken (naturalWidth == 0);
- an internal link points at a missing page or a missing #anchor.
It prints one line per page and saves full-page screenshots of index and of the most math- and
figure-heavy page to <out>/_screenshots/ for humans to look at.
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build  # page names and reading order come from the same rules the build uses

CHROMIUM = '/usr/bin/chromium'
CHROME_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--no-first-run']
SKIP_DIRS = {'_static', '_sources', '_images', '_screenshots', '_sphinx_design_static'}

# Runs in the page after load: waits for MathJax, then measures what the checks need.
PROBE = r"""async () => {
  const math = [...document.querySelectorAll('span.math, div.math')];
  let mathjax = 'absent';
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise; mathjax = 'ready';
  }
  for (const img of document.images) img.loading = 'eager';
  await Promise.all([...document.images].map(i => i.complete ? 0 :
        new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  // text a reader sees, minus code and typeset math
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight, .math, nav, .bd-sidebar')
       .forEach(e => e.remove());
  const text = clone.textContent;
  const raw = [...text.matchAll(/(?<![\\\w])\$\$?[^$\n]{1,200}?\$\$?|\\begin\{[a-z*]+\}|\\\(|\\\[/g)].map(m => m[0]);
  return {
    mathjax, nmath: math.length,
    untypeset: math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60)),
    nmjx: document.querySelectorAll('mjx-container').length,
    merror: document.querySelectorAll('mjx-merror, [data-mml-node="merror"]').length,
    raw: raw.slice(0, 5),
    imgs: document.images.length,
    broken: [...document.images].filter(i => i.naturalWidth === 0).map(i => i.getAttribute('src')),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.getAttribute('name')),
  };
}"""

def html_pages(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob('*.html') if not (set(p.relative_to(out).parts[:-1]) & SKIP_DIRS))

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nbs', type=Path, default=None, help='notebooks folder (default: nbs/)')
    ap.add_argument('--out', type=Path, default=None, help='site folder (default: _docs/)')
    ap.add_argument('--timeout', type=float, default=30, help='seconds allowed per page')
    a = ap.parse_args(argv)
    s = build.settings()
    nbs = (a.nbs or build.ROOT/s.get('nbs_path', 'nbs')).resolve()
    out = (a.out or build.ROOT/s.get('doc_path', '_docs')).resolve()
    if not (out/'index.html').exists():
        print(f"check: {out}/index.html does not exist: run `make docs` first"); return 1

    failures: list[str] = []
    def fail(page, msg): failures.append(f'{page}: {msg}')

    expected = ['index'] + [stem for stem in build.expected_pages(nbs) if stem != 'index'] + ['api']
    for stem in expected:
        if not (out/f'{stem}.html').exists(): fail(f'{stem}.html', 'missing (expected from '
            + (f'{build.expected_pages(nbs)[stem].name})' if stem in build.expected_pages(nbs) else 'the build)'))

    from playwright.sync_api import sync_playwright
    pages, results, t0 = html_pages(out), {}, time.time()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        ctx = browser.new_context(viewport={'width': 1280, 'height': 900}, service_workers='block')
        for f in pages:
            name, blocked, errors = str(f.relative_to(out)), [], []
            def route(r, req, blocked=blocked):     # playwright passes (route, request)
                if req.url.split(':', 1)[0] in ('file', 'data', 'blob'): r.continue_()
                else: blocked.append(req.url); r.abort()
            page = ctx.new_page()
            page.set_default_timeout(a.timeout * 1000)
            page.route('**/*', route)
            page.on('pageerror', lambda e, errors=errors: errors.append(str(e)))
            try:
                page.goto(f.as_uri(), wait_until='load')
                r = page.evaluate(PROBE)
            except Exception as e:
                fail(name, f'could not load/probe: {str(e).splitlines()[0]}'); continue
            results[f] = (r, page)
            if blocked: fail(name, f'{len(blocked)} network request(s) attempted, e.g. {blocked[0]}')
            if errors: fail(name, f'JavaScript error: {errors[0][:200]}')
            if r['nmath'] and r['mathjax'] != 'ready': fail(name, f"{r['nmath']} math nodes but MathJax did not load")
            if r['untypeset']: fail(name, f"{len(r['untypeset'])} of {r['nmath']} math nodes untypeset, e.g. {r['untypeset'][0]!r}")
            if r['nmjx'] < r['nmath']: fail(name, f"only {r['nmjx']} mjx-container for {r['nmath']} math nodes")
            if r['merror']: fail(name, f"{r['merror']} MathJax error(s) (bad TeX) on the page")
            if r['raw']: fail(name, f"raw TeX left in the text: {r['raw']}")
            if r['broken']: fail(name, f"{len(r['broken'])} broken image(s): {r['broken'][:3]}")
            print(f"{'ok ' if not any(x.startswith(name + ':') for x in failures) else 'BAD'} {name:28s} "
                  f"math {r['nmath'] - len(r['untypeset'])}/{r['nmath']} (mjx {r['nmjx']}, errors {r['merror']})  "
                  f"img {r['imgs'] - len(r['broken'])}/{r['imgs']}  blocked requests {len(blocked)}", flush=True)

        # internal links: target file exists, and its #anchor exists when the target page was probed
        ids = {f.resolve(): set(r['ids']) for f, (r, _) in results.items()}
        for f, (r, _) in results.items():
            for href in r['links']:
                u = urlsplit(href)
                if u.scheme != 'file': continue
                target = Path(unquote(u.path)).resolve()
                if target == f.resolve() and not u.fragment: continue
                if not target.exists(): fail(str(f.relative_to(out)), f'broken link to {target.name}'); continue
                if u.fragment and target in ids and unquote(u.fragment) not in ids[target]:
                    fail(str(f.relative_to(out)), f'link to missing anchor {target.name}#{u.fragment}')

        # screenshots for humans: index, and the page with the most math + figures
        shots = out/'_screenshots'; shots.mkdir(exist_ok=True)
        content = {f: r for f, (r, _) in results.items() if f.stem not in ('index', 'api', 'genindex', 'search')}
        heavy = max(content, default=None, key=lambda f: (content[f]['nmath'] > 0 and content[f]['imgs'] > 0,
                                                            content[f]['nmath'] + 20 * content[f]['imgs']))
        for f in {out/'index.html', heavy} - {None}:
            if f in results:
                results[f][1].screenshot(path=str(shots/f'{f.stem}.png'), full_page=True)
                print(f'screenshot: {shots/(f.stem + ".png")}')
        browser.close()

    print(f'checked {len(results)} pages in {time.time() - t0:.1f}s')
    failures = list(dict.fromkeys(failures))     # one line per distinct problem
    if failures:
        print(f'\ndocs-check FAILED ({len(failures)} problem(s)):')
        for x in failures: print('  ' + x)
        return 1
    print('docs-check passed: every page present, math typeset, images load, links resolve, no network')
    return 0

if __name__ == '__main__': sys.exit(main())
