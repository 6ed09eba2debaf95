# The project's commands. README.md names the ones a reader needs: `make install`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# What FFCV's C extension builds against, and the real Fashion-MNIST files (Debian packages).
APT_PACKAGES := pkg-config libopencv-dev libturbojpeg0-dev dataset-fashion-mnist
FFCV_PKGCONFIG := opencv4 libturbojpeg

.PHONY: install system-packages classroom test test-slow data bench book clean

install: system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[test]'
	@if pkg-config --exists $(FFCV_PKGCONFIG) 2>/dev/null; then \
	    $(BIN)/python -m pip install -q -e '.[ffcv]' \
	      || echo "make install: FFCV did not build; the tensor loader back end serves instead."; \
	else \
	    echo "make install: FFCV needs the system packages pkg-config libopencv-dev libturbojpeg0-dev;"; \
	    echo "  install them (e.g. sudo apt-get install pkg-config libopencv-dev libturbojpeg0-dev) and rerun."; \
	    echo "  Going on without FFCV: the tensor loader back end serves."; \
	fi
	touch $(STAMP)

# As root with apt: install the packages. Otherwise say what to install and go on.
system-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; } \
	      || echo "make install: apt-get could not install $(APT_PACKAGES); going on without them."; \
	else \
	    echo "make install: not root or no apt-get; for FFCV and real Fashion-MNIST install: $(APT_PACKAGES)"; \
	fi

$(STAMP):
	$(MAKE) install

# nbgrader in its own venv: torchattacks (a core dependency) pins requests~=2.25.1 and nbgrader 0.9
# needs requests>=2.26, so pip cannot install both in one. `ensembles assignment` finds it here and
# registers the project's interpreter in it as the kernel the assignments run in.
CLASSROOM       := .venv-classroom
CLASSROOM_STAMP := $(CLASSROOM)/.installed
NBGRADER        := nbgrader>=0.9.6,<0.10
classroom:
	test -x $(CLASSROOM)/bin/python || $(PYTHON) -m venv $(CLASSROOM)
	$(CLASSROOM)/bin/python -m pip install -q --upgrade pip
	$(CLASSROOM)/bin/python -m pip install -q '$(NBGRADER)'
	touch $(CLASSROOM_STAMP)

$(CLASSROOM_STAMP):
	$(MAKE) classroom

test: $(STAMP) $(CLASSROOM_STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP) $(CLASSROOM_STAMP)
	$(BIN)/python -m pytest -q -m slow

# Decode and cache every dataset available on this machine (once; later calls reuse the cache).
data: $(STAMP)
	$(BIN)/ensembles data

# The project's main command: install (once: the stamp, as for `make test`), prepare data, run
# every chapter into book/ (papermill; progress on the terminal), build the HTML book offline into
# _build/html/. PROFILE=cpu|gpu|paper|smoke overrides the auto choice.
PROFILE ?= auto
book: data
	$(BIN)/ensembles book --profile $(PROFILE)

bench: $(STAMP)
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/attack.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) $(CLASSROOM) *.egg-info .pytest_cache

.PHONY: html vendor
# Build the HTML book from the committed chapters in book/ (no chapter is rerun), offline;
# output in _build/html/. Warnings fail the build.
html: $(STAMP)
	$(BIN)/python -m ensembles_lib.book

# Fetch MathJax 3 into the git-ignored vendor/ (npm, once); `make html` does this when needed.
vendor: $(STAMP)
	$(BIN)/python -c "from ensembles_lib.book import vendor_mathjax; print(vendor_mathjax())"
