# Two commands on a fresh machine:
#   make run    set up, then run the built-in demo
#   make test   set up, then run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO := data/demo

.PHONY: setup run test clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m celeba_model make-demo --out $(DEMO) --num-images 10000
	@resume=""; if [ -f runs/demo-paper/config.json ]; then resume="--resume"; fi; \
	$(PY) -m celeba_model train --data-root $(DEMO) --arch paper --epochs 10 --out runs/demo-paper $$resume

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf runs data .pytest_cache
