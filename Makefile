# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv when it is missing and install the package into it, with the
# RAPIDS extra matching the NVIDIA driver when there is one (scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test gpu-test bench clean

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/workbench demo

# The JupyterLab browser test's Chromium (scripts/browser.sh), once.
$(VENV)/.browser: scripts/browser.sh $(VENV)/.installed
	bash scripts/browser.sh
	touch $@

test: $(VENV)/.installed $(VENV)/.browser
	$(PY) -m pytest -q

gpu-test: $(VENV)/.installed
	$(PY) -m pytest -q -m gpu

bench: $(VENV)/.installed
	$(VENV)/bin/workbench bench

clean:
	rm -rf $(VENV) build *.egg-info
