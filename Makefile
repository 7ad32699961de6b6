# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make book   # venv + pinned requirements, run every notebook with papermill, build the HTML
#   make test   # same set-up, then the test suite
#   make book DATA=/path/to/perturb_processed.h5ad   # real data (or DATA=dataverse), own results folder
#   make lab    # JupyterLab: every notebooks/*.py opens as a notebook and saves back to py:percent
# The chapters run as the Snakemake workflow in workflow/Snakefile (the same one a cluster runs).
PROFILE ?= default
DATA ?=
CORES ?= $(shell nproc)
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book notebooks html test lab clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

book: notebooks html

notebooks: $(STAMP)
	$(VENV)/bin/snakemake --snakefile workflow/Snakefile --cores $(CORES) \
		--config profile=$(PROFILE) $(if $(DATA),data=$(DATA))

html: $(STAMP)
	$(VENV)/bin/jupyter-book build --quiet .
	@echo "Book: _build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest

# .py files open in JupyterLab as notebooks by default (jupytext's viewer; jupytext.toml pairs
# them with py:percent, without outputs)
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
lab: $(STAMP)
	mkdir -p $(dir $(LAB_SETTINGS))
	echo '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}' > $(LAB_SETTINGS)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --ContentsManager.preferred_dir=notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf _build book/executed results .snakemake
