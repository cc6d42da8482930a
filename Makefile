# gatolab: the two commands of the README are the contract.
#   make demo  - the main job, on a fresh machine (sets up .venv itself)
#   make test  - the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUNS   ?= runs
# Procgen (gatolab/envs/procgen.py) without its numpy<2 pin: see pyproject.toml's envs extra.
PROCGEN_PKGS := procgen-mirror==0.10.7 gym3==0.3.3 gym==0.26.2 gym-notices==0.1.0
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: demo test venv system-deps notebooks clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@bash scripts/system_deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]"
	$(PY) -m pip install --quiet --no-deps $(PROCGEN_PKGS)
	@touch $(STAMP)

system-deps:
	@bash scripts/system_deps.sh

# The main job: data -> a small Gato trained on CPU for DEMO_MINUTES -> evaluation in the
# real environments -> the executed report notebook and its HTML export (runs/demo/).
DEMO_MINUTES ?= 20
demo: $(STAMP)
	$(PY) -m gatolab.demo --out $(RUNS)/demo --train-minutes $(DEMO_MINUTES)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q

# Regenerates every notebooks/*.ipynb from its paired jupytext notebooks/*.py (outputs stripped).
notebooks: $(STAMP)
	$(PY) -m gatolab.notebooks sync

bench: $(STAMP)
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf $(RUNS) .pytest_cache
