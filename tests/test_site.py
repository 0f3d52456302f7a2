"""The built site in a real headless browser (Debian's Chromium driven by Playwright).

Needs a built site (`make book`), /usr/bin/chromium, the Python package playwright, and the
files the pages fetch from CDNs, installed locally by `make site-assets` (npm pack). The
machine has no internet, so every CDN request is answered from those local files, and the
pages' SRI `integrity` attributes, which a local copy cannot match, are removed in flight.

`make test` sets DDPM_BOOK_SITE_TESTS=required, so a missing prerequisite fails there;
a bare `pytest` skips these tests with the reason instead.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
ASSETS = Path(os.environ.get("DDPM_BOOK_SITE_ASSETS", ROOT / ".cache" / "site-assets"))
CHROMIUM = os.environ.get("DDPM_BOOK_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("DDPM_BOOK_SITE_TESTS") == "required"

# CDN URL prefix -> local directory (filled by `make site-assets`).
CDN = {
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/": ASSETS
    / "requirejs"
    / "package",
    "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.6/dist/": ASSETS
    / "html-manager"
    / "package"
    / "dist",
    "https://cdn.jsdelivr.net/npm/mathjax@3/es5/": ASSETS
    / "mathjax"
    / "package"
    / "es5",
    "https://cdn.jsdelivr.net/npm/onnxruntime-web@1.30.0/dist/": ASSETS
    / "onnxruntime-web"
    / "package"
    / "dist",
}
CDN_RENAMES = {
    "require.min.js": "require.js"
}  # npm's requirejs ships the unminified file
# The widget manager asks for its icon fonts relative to the page (readers online get 404s too).
WIDGET_FONTS = re.compile(
    r"/@jupyter-widgets/html-manager/dist/([\w.]+\.(?:woff2?|ttf|eot|svg))$"
)
ALLOWED_PAGE_ERRORS = {
    "Identifier 'THEBE_JS_URL' has already been declared"
}  # benign, every JB1 page
ALLOWED_CONSOLE_ERRORS = {
    "Got invalid theme mode: . Resetting to auto."
}  # the theme's, with no stored choice
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing_prerequisites() -> list[str]:
    missing = []
    if not (SITE / "index.html").is_file():
        missing.append(f"no built site at {SITE} (run `make book`)")
    if not Path(CHROMIUM).is_file():
        missing.append(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    if not all(path.is_dir() for path in CDN.values()):
        missing.append(f"no CDN files under {ASSETS} (run `make site-assets`)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright is not installed")
    return missing


if missing_prerequisites():
    reason = "; ".join(missing_prerequisites())
    if REQUIRED:
        raise RuntimeError(f"browser tests required but cannot run: {reason}")
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402

pytestmark = (
    pytest.mark.slow
)  # `make unit` leaves these out: subprocesses, real sampling, the built site

CHAPTERS = sorted(
    p.relative_to(SITE).as_posix() for p in (SITE / "book").glob("*.html")
)
WIDGET_PAGES = [
    "book/forward_process.html",
    "book/guidance.html",
    "book/guidance_mnist.html",
    "book/interpolation.html",
    "book/sampling.html",
]
FIGURE_PAGE = "book/gaussian_toolkit.html"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class IsolatingHandler(QuietHandler):
    """Headers that make pages cross-origin isolated, as a host that can set them would send."""

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


def serve_site(handler):
    """Serve the built site on a free port of 127.0.0.1 while the generator is open; yields its base URL."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(SITE))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def base_url():
    yield from serve_site(QuietHandler)


@pytest.fixture(scope="module")
def isolated_base_url():
    yield from serve_site(IsolatingHandler)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=BROWSER_ARGS
        )
        yield browser
        browser.close()


class Visit:
    """A page opened with CDN requests answered locally; records errors and unserved requests."""

    def __init__(self, browser, base_url: str, path: str, color_scheme: str = "light"):
        self.base_url = base_url
        self.page_errors: list[str] = []
        self.unserved: list[str] = []
        self.failed: list[str] = []
        self.requested: list[str] = []
        self.console_errors: list[str] = []
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 900}, color_scheme=color_scheme
        )
        self.page: Page = self.context.new_page()
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )
        self.page.on(
            "response",
            lambda r: (
                self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None
            ),
        )
        self.page.goto(f"{base_url}/{path}", wait_until="networkidle")
        # MathJax typesets asynchronously; wait for its first pass when the page loads it.
        self.page.wait_for_function(
            "() => !window.MathJax || !window.MathJax.startup || window.MathJax.startup.promise",
            timeout=20_000,
        )
        self.page.evaluate(
            "() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null"
        )

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base_url):
            fonts = WIDGET_FONTS.search(urlparse(url).path)
            if fonts:
                return route.fulfill(
                    path=str(
                        CDN[
                            "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.6/dist/"
                        ]
                        / fonts.group(1)
                    )
                )
            if route.request.resource_type == "document":
                response = route.fetch()
                body = re.sub(
                    r'\s(?:integrity|crossorigin)="[^"]*"', "", response.text()
                )
                return route.fulfill(response=response, body=body)
            return route.continue_()
        for prefix, directory in CDN.items():
            if url.startswith(prefix):
                name = url[len(prefix) :].split("?")[0]
                local = directory / CDN_RENAMES.get(name, name)
                if local.is_file():
                    content_type = {
                        ".js": "application/javascript",
                        ".mjs": "text/javascript",
                        ".wasm": "application/wasm",
                    }.get(local.suffix)
                    # As the CDN does: without these headers the browser refuses integrity-checked cross-origin
                    # files, and an isolated page refuses every cross-origin file.
                    return route.fulfill(
                        path=str(local),
                        content_type=content_type,
                        headers={
                            "access-control-allow-origin": "*",
                            "cross-origin-resource-policy": "cross-origin",
                        },
                    )
        self.unserved.append(url)
        return route.abort()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, base_url):
    opened = []

    def open_page(path: str, **kwargs) -> Visit:
        opened.append(Visit(browser, base_url, path, **kwargs))
        return opened[-1]

    yield open_page
    for v in opened:
        v.close()


@pytest.mark.parametrize("path", ["index.html", *CHAPTERS])
def test_page_loads_without_errors(visit, path):
    v = visit(path)
    unexpected = [e for e in v.page_errors if e not in ALLOWED_PAGE_ERRORS]
    assert not unexpected, f"JavaScript errors: {unexpected}"
    assert not v.failed, f"failed requests: {v.failed}"
    assert not v.unserved, f"requests to outside the machine: {v.unserved}"
    assert v.page.locator("mjx-merror").count() == 0, "MathJax reported a formula error"
    assert (
        v.page.locator(".output.traceback, .output.error, .output.stderr").count() == 0
    ), "a cell shows an error or stderr output"
    assert "Traceback (most recent call last)" not in v.page.content()
    broken = v.page.evaluate(
        "() => Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)"
    )
    assert not broken, f"images that failed to load: {broken}"
    # At the viewport's 1,280 px, a code block of lines within 88 characters (ruff's line
    # length) must not scroll sideways (_static/code-column.css).
    scrolling = v.page.evaluate(FITS_88)
    assert not scrolling, f"code blocks of <= 88 columns that scroll: {scrolling}"


FITS_88 = """() => [...document.querySelectorAll('div.highlight pre')]
    .filter(p => p.offsetParent !== null && p.scrollWidth > p.clientWidth + 1)
    .filter(p => Math.max(...p.textContent.split('\\n').map(l => l.length)) <= 88)
    .map(p => p.textContent.trim().split('\\n')[0].slice(0, 60))"""


@pytest.mark.parametrize(
    "path",
    [
        c
        for c in CHAPTERS
        if c
        not in ("book/glossary.html", "book/bibliography.html", "book/preface.html")
    ],
)
def test_chapter_math_is_typeset(visit, path):
    v = visit(path)
    assert v.page.locator("mjx-container").count() > 0, (
        "no formula was typeset: MathJax did not run"
    )


def wait_until(page: Page, condition: str, arg=None, timeout_ms: int = 10_000) -> bool:
    """Wait until the JavaScript function `condition(arg)` is truthy; False if it is not within the
    time. The test then asserts what it checks, with its own message."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout_ms)
    except PlaywrightTimeoutError:
        return False
    return True


def visible_image(page: Page) -> bytes:
    """The PNG currently shown by the widget (the Stack shows one Image at a time)."""
    return page.locator(".widget-image").filter(visible=True).first.screenshot()


# The src of the first visible widget image once it has loaded, else null. Each frame is its own
# Image widget with its own blob URL, so the src changes when the Stack shows another frame.
SHOWN_IMAGE = """() => {
    const shown = Array.from(document.querySelectorAll('.widget-image')).find(i => {
        const box = i.getBoundingClientRect(); return box.width > 0 && box.height > 0; });
    return shown && shown.complete && shown.naturalWidth > 0 ? shown.src : null; }"""


def another_image_shown(page: Page, before: str | None) -> bool:
    """Wait until the widget shows a loaded image other than `before` (a src)."""
    return wait_until(
        page,
        f"before => {{ const src = ({SHOWN_IMAGE})(); return src !== null && src !== before; }}",
        arg=before,
    )


@pytest.mark.parametrize("path", WIDGET_PAGES)
def test_widget_scrubs_without_a_kernel(visit, path):
    v = visit(path)
    page = v.page
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.wait_for(state="visible", timeout=20_000)
    page.wait_for_function(f"() => ({SHOWN_IMAGE})() !== null", timeout=20_000)
    shown = page.evaluate(SHOWN_IMAGE)
    before = visible_image(page)
    handle.focus()
    page.keyboard.press("End")  # to the last frame, t = T
    # Each wait ends when the widget shows another frame (at most 10 s); the comparisons check.
    another_image_shown(page, shown)
    shown = page.evaluate(SHOWN_IMAGE)
    after_slider = visible_image(page)
    assert after_slider != before, "moving the t slider did not change the image"
    page.locator(".widget-dropdown select").first.select_option(
        index=1
    )  # another schedule
    another_image_shown(page, shown)
    shown = page.evaluate(SHOWN_IMAGE)
    handle.focus()
    page.keyboard.press("Home")
    another_image_shown(page, shown)
    assert visible_image(page) != before, (
        "switching the schedule did not change the image"
    )


class LinkCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            self.srcs.append(attrs["src"])


@functools.lru_cache(maxsize=None)
def parse(page: Path) -> LinkCollector:
    collector = LinkCollector()
    collector.feed(page.read_text(encoding="utf-8"))
    return collector


@pytest.mark.parametrize(
    "path", ["index.html", "search.html", "genindex.html", *CHAPTERS]
)
def test_internal_links_and_images_resolve(path):
    page = SITE / path
    collector = parse(page)
    broken = []
    for ref in collector.hrefs + collector.srcs:
        parsed = urlparse(ref)
        if parsed.scheme or ref.startswith(("mailto:", "javascript:", "//")):
            continue
        target = (page.parent / unquote(parsed.path)).resolve() if parsed.path else page
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(ref)
        elif (
            parsed.fragment
            and target.suffix == ".html"
            and parsed.fragment not in parse(target).ids
        ):
            broken.append(ref)
    assert not broken, f"{path}: links or images that do not resolve: {broken[:10]}"


def test_search_finds_a_known_term(visit):
    v = visit("search.html?q=posterior")
    v.page.wait_for_function(
        "() => document.querySelectorAll('#search-results li').length > 0",
        timeout=20_000,
    )
    results = v.page.locator("#search-results li").all_inner_texts()
    assert any("reverse process and the posterior" in r.lower() for r in results), (
        results[:5]
    )


# The mean of the body background's red, green and blue channels (0 to 255).
MEAN_BODY_CHANNEL = """() => getComputedStyle(document.body).backgroundColor
    .match(/\\d+/g).slice(0, 3).map(Number).reduce((a, b) => a + b) / 3"""


def test_figures_stay_readable_in_dark_mode(visit):
    v = visit(FIGURE_PAGE, color_scheme="dark")
    page = v.page
    page.evaluate(
        "() => { document.documentElement.dataset.theme = 'dark'; document.documentElement.dataset.mode = 'dark'; }"
    )
    # The theme's colours switch by CSS (possibly with a transition): wait for a dark background.
    wait_until(page, f"() => ({MEAN_BODY_CHANNEL})() < 80")
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
    assert sum(channels) / 3 < 80, (
        f"dark mode did not take effect (body background {background})"
    )
    figure = page.locator("img[src*='_images/']").first
    figure.scroll_into_view_if_needed()
    shot = figure.screenshot()
    import io

    from PIL import Image  # matplotlib's dependency, so always present

    gray = Image.open(io.BytesIO(shot)).convert("L")
    pixels = list(gray.tobytes())  # mode L: one byte per pixel
    bright = sum(p > 200 for p in pixels) / len(pixels)
    dark = sum(p < 40 for p in pixels) / len(pixels)
    # An opaque white figure: mostly light pixels, with dark ink for axes, text and lines.
    assert bright > 0.6 and dark > 0.002, (
        f"figure not readable on the dark page: {bright:.0%} light, {dark:.1%} dark"
    )


def figure_cells(notebook: Path) -> int:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(
        c["cell_type"] == "code" and "plt.show()" in "".join(c["source"]) for c in cells
    )


@pytest.mark.parametrize("path", CHAPTERS)
def test_every_figure_is_on_the_page_with_alt_text(path):
    notebook = ROOT / path.replace(".html", ".ipynb")
    figures = re.findall(
        r'<img alt="([^"]*)" src="(\.\./_images/[^"]+)"',
        (SITE / path).read_text(encoding="utf-8"),
    )
    # Each figure cell must have produced its image (a non-inline matplotlib backend drops them all).
    expected = figure_cells(notebook) if notebook.is_file() else 0
    assert len(figures) >= expected, (
        f"{path}: {len(figures)} figures on the page, {expected} figure cells"
    )
    missing = [
        src for alt, src in figures if not alt or alt == src or alt.endswith(".png")
    ]
    assert not missing, f"{path}: figures without alt text: {missing}"


def test_download_buttons_and_no_buttons_that_lead_nowhere():
    # Without repository.url in _config.yml there are no repository, issues or launch buttons.
    for path in CHAPTERS:
        html = (SITE / path).read_text(encoding="utf-8")
        assert "ddpm-book/ddpm-book" not in html and "None/None" not in html, path
        if (ROOT / path.replace(".html", ".ipynb")).is_file():
            assert f"_sources/book/{Path(path).stem}.ipynb" in html, (
                f"{path}: no .ipynb download button"
            )


# The page "Generate in your browser": the shipped model in onnxruntime-web.
BROWSER_PAGE = "book/browser.html"
MODELS = SITE / "_static" / "models"


def press(page: Page, button: str, timeout_ms: int = 180_000) -> str:
    """Click a button of the live page and wait until its run has finished; return the status line."""
    page.click(button)
    page.wait_for_function(
        "() => ['done', 'error'].includes(document.getElementById('ddpm-status').dataset.state)",
        timeout=timeout_ms,
    )
    status = page.locator("#ddpm-status")
    assert status.get_attribute("data-state") == "done", status.inner_text()
    return status.inner_text()


def canvas_pixels(page: Page, canvas: str):
    """The canvas's 4 x 4 grid of digits as a (16, 1, 28, 28) tensor in [-1, 1] (read back from its grey levels)."""
    import torch

    grey = page.evaluate(f"""() => {{ const c = document.querySelector('{canvas}');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 === 0)); }}""")
    grid = torch.tensor(grey, dtype=torch.float32).reshape(4 * 28, 4 * 28) / 127.5 - 1
    return grid.reshape(4, 28, 4, 28).permute(0, 2, 1, 3).reshape(16, 1, 28, 28)


def exported_test_digits():
    """The 16 test digits the page loads, rounded to grey levels as a canvas shows them: (16, 1, 28, 28) in [-1, 1]."""
    import torch

    from ddpm_lite.data import to_pixels

    digits = json.loads((MODELS / "mnist_test_digits.json").read_text())
    return (
        to_pixels(torch.tensor(digits["x0"]).reshape(digits["shape"])).float() / 127.5
        - 1
    )


def set_value(page: Page, selector: str, value) -> None:
    page.evaluate(f"""() => {{ const e = document.querySelector('{selector}'); e.value = '{value}';
        e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); }}""")


def assert_clean(v: Visit) -> None:
    assert not [e for e in v.page_errors if e not in ALLOWED_PAGE_ERRORS], v.page_errors
    assert not [e for e in v.console_errors if e not in ALLOWED_CONSOLE_ERRORS], (
        v.console_errors
    )
    assert not v.failed and not v.unserved, (v.failed, v.unserved)


def test_the_live_page_loads_no_runtime_and_no_model_until_a_button_is_pressed(visit):
    v = visit(BROWSER_PAGE)
    v.page.wait_for_function(
        "() => document.getElementById('ddpm-status').dataset.state === 'idle'",
        timeout=20_000,
    )
    heavy = [
        u for u in v.requested if "onnxruntime-web" in u or "/_static/models/" in u
    ]
    assert not heavy, heavy


def test_generate_makes_the_requested_digit_and_the_run_can_be_scrubbed(visit):
    import torch

    from ddpm_lite.classifier import load_classifier, predict

    v = visit(BROWSER_PAGE)
    page = v.page
    set_value(page, "#ddpm-seed", 3)
    page.select_option("#ddpm-digit", "7")
    set_value(page, "#ddpm-scale", 2)
    status = press(page, "#ddpm-generate")
    # the default: the flow model, Heun's 10 steps on the straight path
    assert "16 digits (mnist-flow), 10 Heun steps, 19 network calls" in status, status
    assert_clean(v)
    samples = canvas_pixels(page, "#ddpm-x0")
    assert samples.std() > 0.3, "the canvas is (nearly) constant"
    with torch.no_grad():
        labels = predict(load_classifier(), samples)[1].argmax(1)
    # benchmarks/results/flow_model.json: the requested digit in most samples at w = 2
    assert (labels == 7).sum() >= 14, labels.tolist()
    # Back to the start of the run: x_1 is noise, unlike the sample.
    set_value(page, "#ddpm-scrub", 0)
    assert "r = 1.000" in page.locator("#ddpm-scrub-label").inner_text()
    noise = canvas_pixels(page, "#ddpm-xt")
    assert (noise - samples).abs().mean() > 0.3


def test_random_digits_on_the_page_are_of_many_kinds(visit):
    import torch

    from ddpm_lite.classifier import load_classifier, predict

    v = visit(BROWSER_PAGE)
    page = v.page
    page.select_option("#ddpm-digit", "random")
    assert not page.locator("#ddpm-scale").is_disabled()
    set_value(page, "#ddpm-scale", 1)
    press(page, "#ddpm-generate")
    assert_clean(v)
    with torch.no_grad():
        probs = predict(load_classifier(), canvas_pixels(page, "#ddpm-x0"))[1]
    # 16 labels drawn uniformly from ten: at least 5 kinds unless the draw is broken
    assert len(set(probs.argmax(1).tolist())) >= 5, probs.argmax(1).tolist()
    assert probs.max(1).values.mean() > 0.8  # digits, not blobs


def test_the_ddpm_model_samples_with_ddim_and_each_model_offers_its_samplers(visit):
    v = visit(BROWSER_PAGE)
    page = v.page
    enabled = lambda: page.evaluate(  # noqa: E731
        "() => Array.from(document.querySelector('#ddpm-sampler').options)"
        ".filter((o) => !o.disabled).map((o) => o.value)"
    )
    assert enabled() == ["heun", "euler"]
    page.select_option("#ddpm-model", "mnist-ddpm")
    assert enabled() == ["ddim", "dpm-solver++"]
    assert page.locator("#ddpm-sampler").input_value() == "ddim"  # its default
    set_value(page, "#ddpm-seed", 3)
    page.select_option("#ddpm-digit", "7")
    status = press(page, "#ddpm-generate")
    assert "16 digits (mnist-ddpm), 10 DDIM steps, 10 network calls" in status, status
    assert_clean(v)
    set_value(page, "#ddpm-scrub", 0)
    assert "t = 1000" in page.locator("#ddpm-scrub-label").inner_text()
    page.select_option("#ddpm-model", "mnist-flow")
    assert page.locator("#ddpm-sampler").input_value() == "heun"


def test_the_browser_sampler_agrees_with_the_python_sampler(visit):
    reference = json.loads((MODELS / "mnist_ddpm.reference.json").read_text())
    v = visit(BROWSER_PAGE)
    v.page.select_option("#ddpm-model", "mnist-ddpm")
    press(v.page, "#ddpm-check")
    assert_clean(v)
    result = v.page.locator("#ddpm-check-result")
    assert result.get_attribute("data-ok") == "true", result.inner_text()
    # Against the same model file in Python only the sampler's code and the kernels differ; against PyTorch,
    # also the browser model's float16 weights. The tolerances and their reasons are in tools/site_models.py.
    for name in ("onnx", "torch"):
        max_diff = float(result.get_attribute(f"data-max-diff-{name}"))
        assert max_diff <= reference["tolerance"][name], result.inner_text()


def test_the_browser_flow_sampler_agrees_with_the_python_one(visit):
    reference = json.loads((MODELS / "mnist_flow.reference_heun.json").read_text())
    assert reference["sampler"] == "heun" and reference["spacing"] == "even r"
    v = visit(BROWSER_PAGE)  # the default model: mnist-flow
    press(v.page, "#ddpm-check")
    assert_clean(v)
    result = v.page.locator("#ddpm-check-result")
    assert result.get_attribute("data-flow-same-steps") == "true", result.inner_text()
    assert result.get_attribute("data-flow-agrees") == "true", result.inner_text()
    assert result.get_attribute("data-ok") == "true", result.inner_text()
    assert "19 network calls" in result.inner_text()
    for name in ("onnx", "torch"):
        max_diff = float(result.get_attribute(f"data-flow-max-diff-{name}"))
        assert max_diff <= reference["tolerance"][name], result.inner_text()


@pytest.mark.parametrize("prefix,calls", [("one-step", 1), ("two-steps", 2)])
def test_the_browser_flow_map_sampler_agrees_with_the_python_one(visit, prefix, calls):
    name = "reference_flow_map" + ("_2" if calls == 2 else "")
    reference = json.loads((MODELS / f"mnist_meanflow.{name}.json").read_text())
    assert reference["sampler"] == "flow-map" and reference["num_steps"] == calls
    assert reference["scale"] == 1 and reference["spacing"] == "even r"
    v = visit(BROWSER_PAGE)
    v.page.select_option("#ddpm-model", "mnist-meanflow")
    press(v.page, "#ddpm-check")
    assert_clean(v)
    result = v.page.locator("#ddpm-check-result")
    text = result.inner_text()
    assert result.get_attribute(f"data-{prefix}-same-steps") == "true", text
    assert result.get_attribute(f"data-{prefix}-agrees") == "true", text
    assert result.get_attribute("data-ok") == "true", text
    assert f"{calls} network call{'s' * (calls > 1)}, guidance scale 1;" in text, text
    # The tolerances of the other samplers (tools/site_models.py).
    for model in ("onnx", "torch"):
        max_diff = float(result.get_attribute(f"data-{prefix}-max-diff-{model}"))
        assert max_diff <= reference["tolerance"][model], text


def test_the_one_step_model_samples_at_w_1_from_noise_in_one_call_by_default(visit):
    import torch

    v = visit(BROWSER_PAGE)
    page = v.page
    enabled = lambda select: page.evaluate(  # noqa: E731
        f"() => Array.from(document.querySelector('{select}').options)"
        ".filter((o) => !o.disabled).map((o) => o.value)"
    )
    page.select_option("#ddpm-start", "digit")
    page.select_option("#ddpm-model", "mnist-meanflow")
    assert enabled("#ddpm-sampler") == ["flow-map"]
    assert enabled("#ddpm-start") == ["noise"]  # flow_map_trajectory starts at x_1
    assert page.locator("#ddpm-start").input_value() == "noise"
    page.select_option("#ddpm-digit", "7")
    assert page.locator("#ddpm-scale").is_disabled()  # w = 1 only
    steps = page.locator("#ddpm-steps")
    assert (steps.input_value(), steps.get_attribute("max")) == ("1", "4")
    status = press(page, "#ddpm-generate")
    assert "16 digits (mnist-meanflow), 1 flow-map step, 1 network call:" in status
    assert_clean(v)
    # No x0_pred on the way: the x̂0 panel shows the sample itself, and nothing at x_1.
    sevens = canvas_pixels(page, "#ddpm-x0")
    assert torch.equal(sevens, canvas_pixels(page, "#ddpm-xt"))
    set_value(page, "#ddpm-scrub", 0)
    assert "r = 1.000" in page.locator("#ddpm-scrub-label").inner_text()
    assert (canvas_pixels(page, "#ddpm-x0") == -1).all()  # cleared
    # The digit reaches the network: the same seed's x_1 with other labels.
    page.select_option("#ddpm-digit", "random")
    press(page, "#ddpm-generate")
    assert (canvas_pixels(page, "#ddpm-x0") - sevens).abs().mean() > 0.05
    set_value(page, "#ddpm-steps", 4)
    status = press(page, "#ddpm-generate")
    assert "4 flow-map steps, 4 network calls:" in status, status
    assert page.locator("#ddpm-scrub").get_attribute("max") == "4"
    # Each model keeps its own steps: the flow model's default, then the 4 chosen here.
    page.select_option("#ddpm-model", "mnist-flow")
    assert (steps.input_value(), steps.get_attribute("max")) == ("10", "100")
    assert not page.locator("#ddpm-scale").is_disabled()
    page.select_option("#ddpm-model", "mnist-meanflow")
    assert steps.input_value() == "4"


def test_the_javascript_even_grid_is_torch_linspace(visit):
    import torch

    v = visit(BROWSER_PAGE)
    js = v.page.evaluate("""async () => { const m = await import('../_static/ddpm/sampler.mjs');
        return Array.from({length: 40}, (_, i) => m.evenGrid(1, 0, i + 2)); }""")
    for n, grid in enumerate(js):
        expected = torch.linspace(1.0, 0.0, n + 2, dtype=torch.float64)
        # torch's vectorised kernel can differ in the last bit
        assert (torch.tensor(grid, dtype=torch.float64) - expected).abs().max() < 1e-15
        assert grid[0] == 1 and grid[-1] == 0


@pytest.mark.parametrize("model", ["mnist-ddpm", "mnist-flow"])
def test_a_real_digit_noised_a_little_comes_back_and_noised_fully_does_not(
    visit, model
):
    x0 = exported_test_digits()
    v = visit(BROWSER_PAGE)
    page = v.page
    page.select_option("#ddpm-model", model)
    page.select_option("#ddpm-start", "digit")
    distance = {}
    for t in (50, 1000):
        set_value(page, "#ddpm-t", t)
        press(page, "#ddpm-generate")
        distance[t] = (canvas_pixels(page, "#ddpm-x0") - x0).abs().mean().item()
    assert_clean(v)
    # Mean |pixel difference| in [-1, 1]; measured for mnist-ddpm 0.017 at t = 50 and 0.33 at t = 1000 (a new
    # digit); the flow model starts from x_r at r = t / 1000.
    assert distance[50] < 0.1 < distance[1000] / 2, distance


def test_the_javascript_time_steps_are_the_packages(visit):
    from ddpm_lite.sampling import ddim_timesteps

    v = visit(BROWSER_PAGE)
    for T in (1000, 700, 1):
        steps = v.page.evaluate(f"""async () => {{ const m = await import('../_static/ddpm/sampler.mjs');
            return Array.from({{length: {T}}}, (_, i) => m.ddimTimesteps({T}, i + 1)); }}""")
        assert steps == [ddim_timesteps(T, n) for n in range(1, T + 1)], T


def test_the_javascript_log_snr_time_steps_are_the_packages(visit):
    from ddpm_lite.pretrained import load_pretrained
    from ddpm_lite.solvers import solver_timesteps

    schedule = load_pretrained("mnist-ddpm").schedule
    page_schedule = json.loads((MODELS / "mnist_ddpm.json").read_text())
    assert page_schedule["alpha_bars"] == schedule.alpha_bars.tolist()  # the same T
    v = visit(BROWSER_PAGE)
    for t_start in (999, 700, 499, 49, 0):
        expected, n = [], 1
        while n <= t_start + 1:  # every n the grid allows, then the first it refuses
            try:
                expected.append(solver_timesteps(schedule, n, "logsnr", t_start))
            except ValueError:
                break
            n += 1
        refused = n if n <= t_start + 1 else None
        js = v.page.evaluate(f"""async () => {{
            const m = await import('../_static/ddpm/sampler.mjs');
            const s = await (await fetch('../_static/models/mnist_ddpm.json')).json();
            const alphaBars = Float32Array.from(s.alpha_bars);
            const steps = [];
            for (let n = 1; n <= {len(expected)}; n++) {{
                steps.push(m.logSnrTimesteps(alphaBars, n, {t_start}));
            }}
            let refused = null;
            try {{ m.logSnrTimesteps(alphaBars, {len(expected) + 1}, {t_start}); }}
            catch (e) {{ refused = e.message; }}
            return {{ steps, refused }}; }}""")
        assert js["steps"] == expected, t_start
        if refused is None:
            assert js["refused"] is not None  # past t_start + 1: out of range
        else:
            assert js["refused"] and "distinct time steps" in js["refused"], js
    assert len(expected) == 1 and len(solver_timesteps(schedule, 38, "logsnr")) == 38


def test_the_browser_solver_agrees_with_the_python_solver(visit):
    reference = json.loads(
        (MODELS / "mnist_ddpm.reference_dpm_solver.json").read_text()
    )
    assert reference["sampler"] == "dpm-solver++" and reference["order"] == 2
    v = visit(BROWSER_PAGE)
    v.page.select_option("#ddpm-model", "mnist-ddpm")
    press(v.page, "#ddpm-check")
    assert_clean(v)
    result = v.page.locator("#ddpm-check-result")
    assert result.get_attribute("data-solver-same-steps") == "true", result.inner_text()
    assert result.get_attribute("data-solver-agrees") == "true", result.inner_text()
    assert result.get_attribute("data-agrees") == "true", result.inner_text()  # DDIM
    assert "DPM-Solver++(2M)" in result.inner_text()
    # The same tolerances as DDIM's (tools/site_models.py).
    for name in ("onnx", "torch"):
        max_diff = float(result.get_attribute(f"data-solver-max-diff-{name}"))
        assert max_diff <= reference["tolerance"][name], result.inner_text()


def test_dpm_solver_on_the_page_denoises_a_digit_and_says_when_it_takes_fewer_steps(
    visit,
):
    x0 = exported_test_digits()
    v = visit(BROWSER_PAGE)
    page = v.page
    page.select_option("#ddpm-model", "mnist-ddpm")
    page.select_option("#ddpm-sampler", "dpm-solver++")
    assert page.locator("#ddpm-eta").is_disabled()  # DDIM's eta: the solver has none
    page.select_option("#ddpm-start", "digit")
    set_value(page, "#ddpm-t", 50)
    set_value(page, "#ddpm-steps", 20)  # the log-SNR grid from t = 50 fits 12
    status = press(page, "#ddpm-generate")
    assert_clean(v)
    assert (
        "16 digits (mnist-ddpm), 12 DPM-Solver++(2M) steps, 12 network calls" in status
    )
    assert "20 asked" in status and "at most 12 steps" in status, status
    scrub = page.locator("#ddpm-scrub")
    assert scrub.get_attribute("max") == "12"
    distance = (canvas_pixels(page, "#ddpm-x0") - x0).abs().mean().item()
    assert distance < 0.1, distance  # the digit it was given comes back
    set_value(page, "#ddpm-steps", 10)  # within the grid: as asked
    status = press(page, "#ddpm-generate")
    assert "10 DPM-Solver++(2M) steps, 10 network calls:" in status, status
    assert "asked" not in status, status


def test_opened_from_a_file_the_page_says_how_to_serve_it(browser):
    context = browser.new_context()
    page = context.new_page()
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith("file:")
            else route.abort()
        ),
    )
    page.goto((SITE / BROWSER_PAGE).as_uri())
    warning = page.locator("#ddpm-file-warning")
    warning.wait_for(state="visible", timeout=20_000)
    assert (
        "make serve" in warning.inner_text() and "http.server" in warning.inner_text()
    )
    assert page.locator("#ddpm-generate").is_disabled()
    context.close()


def test_a_cross_origin_isolated_site_samples_with_more_threads(
    browser, isolated_base_url
):
    v = Visit(browser, isolated_base_url, BROWSER_PAGE)
    try:
        assert v.page.evaluate("() => self.crossOriginIsolated")
        cores = v.page.evaluate("() => navigator.hardwareConcurrency")
        status = press(v.page, "#ddpm-generate")
        assert f"{min(4, cores)} WebAssembly thread" in status, status
        assert_clean(v)
        assert canvas_pixels(v.page, "#ddpm-x0").std() > 0.3
    finally:
        v.close()


def test_the_javascript_slerp_is_the_packages(visit):
    import torch

    from ddpm_lite.interpolation import slerp

    g = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(1, 784, generator=g, dtype=torch.float64),
        torch.randn(1, 784, generator=g, dtype=torch.float64),
    )
    v = visit(BROWSER_PAGE)
    for other in (
        b,
        a * (1 + 1e-9),
    ):  # a generic angle, and one below the small-angle cut-off
        for lam in (0.0, 0.3, 1.0):
            js = v.page.evaluate(f"""async () => {{ const m = await import('../_static/ddpm/sampler.mjs');
                return Array.from(m.slerp({a[0].tolist()}, {other[0].tolist()}, {lam})); }}""")
            expected = slerp(a, other, lam)[0]
            assert (
                torch.tensor(js, dtype=torch.float64) - expected
            ).abs().max() < 1e-5, lam  # Float32Array output


@pytest.mark.parametrize("model", ["mnist-ddpm", "mnist-flow"])
def test_an_interpolation_runs_from_one_test_digit_to_the_other(visit, model):
    x0 = exported_test_digits()
    v = visit(BROWSER_PAGE)
    page = v.page
    page.select_option("#ddpm-model", model)
    page.select_option("#ddpm-start", "interpolate")
    page.select_option(
        "#ddpm-from", index=0
    )  # by position: a string would also match the labels, which count from 1
    page.select_option("#ddpm-to", index=1)
    set_value(page, "#ddpm-t", 50)
    press(page, "#ddpm-generate")
    assert_clean(v)
    path = canvas_pixels(page, "#ddpm-x0")
    gap = lambda k, j: (path[k] - x0[j]).abs().mean().item()  # noqa: E731
    # The ends decode to the two digits, halfway the decode is far from both: measured for mnist-ddpm mean |Δ| 0.012
    # and 0.015 at the ends, 0.18 and 0.21 from the two digits at λ = 7/15.
    assert gap(0, 0) < 0.1 and gap(15, 1) < 0.1, (gap(0, 0), gap(15, 1))
    assert min(gap(7, 0), gap(7, 1)) > 2 * max(gap(0, 0), gap(15, 1)), (
        gap(7, 0),
        gap(7, 1),
    )
