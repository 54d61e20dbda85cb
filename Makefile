# llmfeatures: two commands do everything.
#   make book   - install into .venv (first time only) and build the book at the `book` scale
#   make test   - install, lint, unit tests, then build the book at the `ci` scale with -W and check the HTML
#
# Torch: 2.13.0 by default.  For a CUDA build pass the version and PyTorch's CUDA wheel index:
#   make book TORCH_SPEC="torch==2.13.0" TORCH_INDEX=<PyTorch CUDA wheel index URL for your CUDA>

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
CI_OUT      := _build/ci
CI_HOME     ?= $(CURDIR)/_build/ci/cache
# Progress bars help in an interactive notebook but print hundreds of lines on a rendered page.
BOOK_ENV    := TQDM_DISABLE=1 PATH=$(CURDIR)/$(BIN):$$PATH

.PHONY: install book test lint unit book-ci check-book clean strip

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
	$(BIN)/python -m pip install -q -e ".[book,dev]" "$(TORCH_SPEC)"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: install
	$(BOOK_ENV) $(BIN)/jupyter-book build .
	@echo "Book: $(CURDIR)/_build/html/index.html"

lint: install
	$(BIN)/ruff check src tests benchmarks notebooks

unit: install
	LLMFEATURES_SCALE=ci LLMFEATURES_HOME=$(CI_HOME) $(BIN)/pytest -m "not book"

book-ci: install
	LLMFEATURES_SCALE=ci LLMFEATURES_HOME=$(CI_HOME) $(BOOK_ENV) \
		$(BIN)/jupyter-book build . --path-output $(CI_OUT) -W -n --keep-going

check-book: install
	LLMFEATURES_BOOK_HTML=$(CI_OUT)/_build/html $(BIN)/pytest -m book

test: lint unit book-ci check-book

strip: install
	$(BIN)/python -m llmfeatures.nbtools strip notebooks/*.ipynb

clean:
	rm -rf _build
