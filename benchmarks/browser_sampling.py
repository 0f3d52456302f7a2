"""Time of the page "Generate in your browser" in headless Chromium, and what a reader downloads.

    make book site-assets && python benchmarks/browser_sampling.py

Serves _build/html on 127.0.0.1, answers the page's requests for onnxruntime-web from the npm
package (`make site-assets`), presses Generate for 16 digits: with the page's default model,
mnist-flow, at 5 and 10 Heun steps (9 and 19 network calls: the default is 10) and 10 Euler
steps; with the one-step model, mnist-meanflow, at 1, 2 and 4 flow-map steps (one network
call each; the default is 1); with mnist-ddpm at 10 and 50 DDIM steps and at 10 and 20
DPM-Solver++(2M) steps (one network call each); each unguided (one batch of 16 per call) and
guided (digit 7, w = 2: one batch of 32; mnist-meanflow samples its digit at w = 1, one batch
of 16), and prints the times the page itself measures (performance.now() around the sampling
loop; the first press of the first model also loads the runtime and the model, reported
apart). One WebAssembly thread: the server is not cross-origin isolated. --models times only
the models named, e.g.

    python benchmarks/browser_sampling.py --models mnist-meanflow
"""

from __future__ import annotations

import argparse
import functools
import gzip
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch
from hardware import describe

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
ORT_CDN = "https://cdn.jsdelivr.net/npm/onnxruntime-web@1.30.0/dist/"
ORT_LOCAL = ROOT / ".cache" / "site-assets" / "onnxruntime-web" / "package" / "dist"
RUNTIME = [
    ORT_LOCAL / "ort.wasm.min.js",
    ORT_LOCAL / "ort-wasm-simd-threaded.mjs",
    ORT_LOCAL / "ort-wasm-simd-threaded.wasm",
]


def downloads(model: str) -> list[Path]:
    """What the first press with `model` fetches; another model's files come when
    chosen."""
    stem = SITE / "_static" / "models" / model.replace("-", "_")
    return [*RUNTIME, stem.with_suffix(".onnx"), stem.with_suffix(".json")]


# model, sampler, its name on the page, the steps timed
CASES = (
    ("mnist-flow", "heun", "Heun", (5, 10)),
    ("mnist-flow", "euler", "Euler", (10,)),
    ("mnist-meanflow", "flow-map", "flow-map", (1, 2, 4)),
    ("mnist-ddpm", "ddim", "DDIM", (10, 50)),
    ("mnist-ddpm", "dpm-solver++", "DPM-Solver++(2M)", (10, 20)),
)
MODELS = tuple(dict.fromkeys(case[0] for case in CASES))
# digit 7: guided at the page's default w = 2, both predictions in one batch; the one-step
# model samples its digit at w = 1 only
GUIDED = {sampler: "digit 7 at w = 2, batch 32" for _, sampler, _, _ in CASES} | {
    "flow-map": "digit 7 at w = 1 (its only scale), batch 16"
}


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def route(request_route) -> None:
    url = request_route.request.url
    if url.startswith(ORT_CDN):
        return request_route.fulfill(
            path=str(ORT_LOCAL / url[len(ORT_CDN) :]),
            headers={"access-control-allow-origin": "*"},
        )
    if url.startswith("http://127.0.0.1"):
        return request_route.continue_()
    return (
        request_route.abort()
    )  # other CDN files (MathJax, widgets) are not needed for timing


def press(page, digit: str, steps: int, sampler: str, model: str) -> dict:
    page.select_option("#ddpm-model", model)
    page.select_option("#ddpm-sampler", sampler)
    page.select_option("#ddpm-digit", digit)
    page.evaluate(
        f"() => {{ const s = document.getElementById('ddpm-steps'); s.value = '{steps}'; s.dispatchEvent(new Event('input')); }}"
    )
    page.click("#ddpm-generate")
    page.wait_for_function(
        "() => ['done', 'error'].includes(document.getElementById('ddpm-status').dataset.state)",
        timeout=600_000,
    )
    status = page.locator("#ddpm-status")
    if status.get_attribute("data-state") != "done":
        raise RuntimeError(status.inner_text())
    return {
        "sample": float(status.get_attribute("data-sample-seconds")),
        "load": float(status.get_attribute("data-load-seconds")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="runs of each setting; the fastest is printed",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        default=MODELS,
        help="the models to time (default: all)",
    )
    args = parser.parse_args()
    cases = [case for case in CASES if case[0] in args.models]
    from playwright.sync_api import sync_playwright

    first_downloads = downloads(cases[0][0])
    for path in first_downloads:
        if not path.is_file():
            raise SystemExit(f"missing {path}: run `make book site-assets` first")
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        print(
            describe(torch.device("cpu")),
            f"| Chromium {browser.version} (headless), onnxruntime-web 1.30.0, 1 WASM thread",
        )
        page = browser.new_page()
        page.route("**/*", route)
        page.goto(f"http://127.0.0.1:{server.server_port}/book/browser.html")
        page.wait_for_function(
            "() => document.getElementById('ddpm-status').dataset.state === 'idle'",
            timeout=60_000,
        )
        model, sampler, _, counts = cases[0]
        first = press(page, "any", counts[-1], sampler, model)
        print(
            f"first press ({model}): runtime and model loaded and compiled in "
            f"{first['load']:.2f} s"
        )
        for digit in ("any", "7"):
            for model, sampler, name, counts in cases:
                label = "unguided, batch 16" if digit == "any" else GUIDED[sampler]
                for steps in counts:
                    seconds = min(
                        press(page, digit, steps, sampler, model)["sample"]
                        for _ in range(args.repeats)
                    )
                    calls = 2 * steps - 1 if sampler == "heun" else steps
                    print(
                        f"{model}: 16 digits, {steps} {name} step{'s' * (steps > 1)} "
                        f"({calls} call{'s' * (calls > 1)}), "
                        f"{label}: {seconds:.2f} s ({1000 * seconds / calls:.0f} ms per call)"
                    )
        browser.close()
    server.shutdown()
    total, total_gz = 0, 0
    for path in first_downloads:
        raw, packed = path.stat().st_size, len(gzip.compress(path.read_bytes(), 9))
        total, total_gz = total + raw, total_gz + packed
        print(
            f"download {path.name}: {raw / 1e6:.2f} MB ({packed / 1e6:.2f} MB gzip -9)"
        )
    print(
        f"download total on first press: {total / 1e6:.2f} MB ({total_gz / 1e6:.2f} MB gzip -9)"
    )


if __name__ == "__main__":
    main()
