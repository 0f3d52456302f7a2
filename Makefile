# The README's two commands: `make book` and `make test`. Each creates or reuses .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ASSETS := .cache/site-assets
# Browser tests: "required" fails when Chromium or the CDN files are missing; "optional" skips.
SITE_TESTS ?= optional

.PHONY: venv book serve test unit lint nbval site-assets chromium clean

## The virtual environment alone: requirements.txt and ddpm_lite (editable), with the `ddpm-lite` command.
venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "Python >= 3.10 is needed" or 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

## Build the whole book, executing every chapter (cached in _build/.jupyter_cache;
## a change to ddpm_lite re-executes the chapters that import it; stale chapters run one per core).
## First the files of the page "Generate in your browser", exported from the shipped model when it changed.
book: $(STAMP)
	$(PY) tools/site_models.py _static/models
	$(PY) tools/book_cache.py _build/.jupyter_cache --execute
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "The book is at: file://$(CURDIR)/_build/html/index.html (or run make serve)"

## Serve the built site on http://localhost:8000 (the page that runs the model needs http, not file://).
serve:
	@echo "Open http://localhost:8000/book/browser.html (Ctrl-C stops the server)"
	$(PYTHON) -m http.server -d _build/html 8000

## Unit tests, nbval's rules on the chapters the build executed, and the built site in headless
## Chromium, on both cores (pytest-xdist; a file's tests share one worker and its fixtures).
test: $(STAMP) lint book site-assets chromium
	DDPM_BOOK_SITE_TESTS=$(SITE_TESTS) $(PY) -m pytest -n 2 --dist loadfile

## ruff: the linter and the formatter's check, over the package, tests, tools, benchmarks and chapters.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## The unit tests alone, for quick iteration: no book build, no command-line runs, no browser.
unit: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow"

## Execute every chapter again under nbval (the build already executes them once; `make test` checks that run).
nbval: $(STAMP)
	$(PY) -m pytest book

## The files the site loads from CDNs, for the offline browser tests (npm registry).
site-assets: $(ASSETS)/.done-2
$(ASSETS)/.done-2:  # the number changes with the package list, so older checkouts fetch again
	@if command -v npm >/dev/null; then \
	  mkdir -p $(ASSETS) && cd $(ASSETS) && \
	  npm pack --silent @jupyter-widgets/html-manager@1.0.6 requirejs@2.3.4 mathjax@3.2.2 onnxruntime-web@1.30.0 >/dev/null && \
	  for pair in html-manager:jupyter-widgets-html-manager-1.0.6 requirejs:requirejs-2.3.4 mathjax:mathjax-3.2.2 \
	              onnxruntime-web:onnxruntime-web-1.30.0; do \
	    rm -rf $${pair%%:*} && mkdir $${pair%%:*} && tar xzf $${pair#*:}.tgz -C $${pair%%:*} && rm $${pair#*:}.tgz; \
	  done && touch .done-2; \
	else echo "npm not found: the browser tests will be skipped"; fi

## Debian's Chromium for the browser tests, installed when we may (root with apt-get).
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	elif [ ! -x /usr/bin/chromium ]; then echo "no /usr/bin/chromium (apt-get install chromium): the browser tests will be skipped"; fi

clean:
	rm -rf _build .pytest_cache
