# Two commands on a fresh machine:
#   make run    set up, then open the dashboard on the built-in demo (http://localhost:8501)
#   make test   set up, then run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run share test clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run dashboard/app.py $(ARGS)

# The dashboard for others on the network: every interface, read-only (no evaluations, no saved
# thresholds, CelebA folders limited to ALLOWED_ROOTS, a list separated by ':').
share: $(STAMP)
	CELEBA_DASHBOARD_READ_ONLY=1 CELEBA_ALLOWED_ROOTS="$(ALLOWED_ROOTS)" \
		$(PY) -m streamlit run dashboard/app.py --server.address 0.0.0.0 $(ARGS)

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf runs data .pytest_cache
