# Two commands on a fresh machine:
#   make run    set up, then open the dashboard on the built-in demo (http://localhost:8501)
#   make test   set up, then run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run dashboard/app.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf runs data .pytest_cache
