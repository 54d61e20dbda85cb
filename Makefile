# llmfeatures: two commands do everything.
#   make book   - install into .venv (first time only) and build the book at the `book` scale
#   make test   - install, lint, unit tests, then build the book at the `ci` scale with -W and check the HTML
#
# Torch: 2.13.0 by default.  For a CUDA build pass the version and PyTorch's CUDA wheel index:
#   make book TORCH_SPEC="torch==2.13.0" TORCH_INDEX=<PyTorch CUDA wheel index URL for your CUDA>
# Changing either reinstalls torch (its stamp file is named after them).

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
BIN         := $(VENV)/bin
CI_OUT      := _build/ci
CI_HOME     ?= $(CURDIR)/_build/ci/cache
# Progress bars help in an interactive notebook but print hundreds of lines on a rendered page.
BOOK_ENV    := TQDM_DISABLE=1 PATH=$(abspath $(BIN)):$$PATH

# --- Python 3.11 or newer, checked before anything else runs ----------------------------------
# (the venv's own Python once it exists, else $(PYTHON))
PY_CHECK := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
PY_OK    := $(shell $(PY_CHECK) -c 'import sys; print(int(sys.version_info >= (3, 11)))' 2>/dev/null)
ifneq ($(filter-out clean,$(or $(MAKECMDGOALS),install)),)
ifneq ($(PY_OK),1)
$(error llmfeatures needs Python 3.11 or newer, but $(PY_CHECK) is \
	"$(strip $(shell $(PY_CHECK) --version 2>&1 || echo not found))". \
	Install Python 3.11+ and run e.g. `make $(MAKECMDGOALS) PYTHON=python3.11` \
	(remove $(VENV) first if it was made with an older Python))
endif
endif

# --- install stamps ----------------------------------------------------------------------------
# The torch stamp is named after a checksum of TORCH_SPEC and TORCH_INDEX: another spec or index
# has no stamp yet, so torch is reinstalled and the package reinstalled on top of it.
TORCH_ID    := $(word 1,$(shell printf '%s|%s' '$(TORCH_SPEC)' '$(TORCH_INDEX)' | cksum))
TORCH_STAMP := $(VENV)/.torch-$(TORCH_ID)
STAMP       := $(VENV)/.installed-$(TORCH_ID)

# --- the notebooks' execution cache follows the code ---------------------------------------------
# jupyter-book caches each notebook's outputs keyed by the notebook alone.  The code stamp is
# named after a checksum of pyproject.toml and the Python files under src/ and book/_ext/ (the
# Sphinx extension): after a change there the
# stamp is missing, and making it clears the execution cache and the doctrees of that build, so
# every notebook is executed again with the new code.
CODE_ID     := $(word 1,$(shell cat pyproject.toml $(sort $(shell find src book/_ext -type f -name '*.py' 2>/dev/null)) | cksum))
BOOK_STAMP  := _build/.code-$(CODE_ID)
CI_STAMP    := $(CI_OUT)/_build/.code-$(CODE_ID)

.PHONY: install book test lint unit book-ci check-book clean strip

install: $(STAMP)

$(TORCH_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
	rm -f $(VENV)/.torch-* $(VENV)/.installed-*
	echo "$(TORCH_SPEC) $(TORCH_INDEX)" > $@

$(STAMP): pyproject.toml $(TORCH_STAMP)
	$(BIN)/python -m pip install -e ".[book,dev]" "$(TORCH_SPEC)"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	echo "$(TORCH_SPEC) $(TORCH_INDEX)" > $@

# A code stamp of a build folder; making it empties that folder's caches of executed notebooks.
%/.code-$(CODE_ID):
	rm -rf $*/.jupyter_cache $*/.doctrees $*/jupyter_execute $*/.code-*
	mkdir -p $* && touch $@

book: install $(BOOK_STAMP)
	$(BOOK_ENV) $(BIN)/jupyter-book build .
	@echo "Book: $(CURDIR)/_build/html/index.html"

lint: install
	$(BIN)/ruff check src tests benchmarks notebooks

unit: install
	LLMFEATURES_SCALE=ci LLMFEATURES_HOME=$(CI_HOME) $(BIN)/pytest -m "not book"

book-ci: install $(CI_STAMP)
	LLMFEATURES_SCALE=ci LLMFEATURES_HOME=$(CI_HOME) $(BOOK_ENV) \
		$(BIN)/jupyter-book build . --path-output $(CI_OUT) -W -n --keep-going

# HTML checks, then every page in headless Chromium (tests/test_browser.py; skipped, and said
# so here, when no Chromium is installed).
check-book: install
	@$(BIN)/python tests/browser.py --which >/dev/null 2>&1 || echo "*** Chromium not found:" \
		"the browser check (tests/test_browser.py) is SKIPPED. Install it (Debian: apt-get" \
		"install chromium) to run it; .ci/run does."
	LLMFEATURES_BOOK_HTML=$(CI_OUT)/_build/html $(BIN)/pytest -m book -rs

test: lint unit book-ci check-book

strip: install
	$(BIN)/python -m llmfeatures.nbtools strip notebooks/*.ipynb

clean:
	rm -rf _build
