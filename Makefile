# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make book   # venv + pinned requirements, run every notebook with papermill, build the HTML
#   make test   # same set-up, then the test suite
#   make book DATA=/path/to/perturb_processed.h5ad   # real data (or DATA=dataverse), own results folder
PROFILE ?= default
DATA ?=
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book notebooks html test clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

book: notebooks html

notebooks: $(STAMP)
	$(PY) -m helpers.book --profile $(PROFILE) $(if $(DATA),--data $(DATA))

html: $(STAMP)
	$(VENV)/bin/jupyter-book build --quiet .
	@echo "Book: _build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf _build book/executed results
