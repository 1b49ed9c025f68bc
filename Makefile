# lammps_al front door.
#   make demo   set everything up (venv, LAMMPS build, cached per machine) and run the main job
#   make test   set everything up and run the test suite
# Variables: PYTHON (the interpreter for the venv), VENV (its folder), LAMMPS_AL_SOURCE (your own LAMMPS
# tree or tarball), PYTEST_ARGS (extra pytest arguments), WITH_GPAW=0 (skip installing and testing GPAW).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lammps_al-installed
PYTEST_ARGS ?=
WITH_GPAW ?= 1
GPAW_DEBS := libxc-dev libopenblas-dev libfftw3-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup lammps info demo regression test unit gpaw potentials clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,parsl]'
	touch $@

lammps: setup
	$(BIN)/lammps-al build

info: lammps
	$(BIN)/lammps-al info

# The aluminium active-learning demo: the loop from scratch, then validation of what it learnt.
DEMO_DIR ?= runs/al_demo
demo: lammps
	$(BIN)/lammps-al info
	rm -rf $(DEMO_DIR)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/lammps-al loop in_files/al_demo.toml --workdir $(DEMO_DIR) --no-progress
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/lammps-al validate $(DEMO_DIR)

regression: lammps
	$(BIN)/lammps-al regression

ifeq ($(WITH_GPAW),1)
test: lammps gpaw
	$(BIN)/lammps-al info
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -ra $(PYTEST_ARGS)
else
test: lammps
	$(BIN)/lammps-al info
	LAMMPS_AL_WITHOUT_GPAW=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -ra $(PYTEST_ARGS)
endif

# GPAW (real DFT oracle): Debian's libxc, OpenBLAS and FFTW, then the PyPI sdist compiled with g++.
gpaw: setup
	@dpkg -s $(GPAW_DEBS) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(GPAW_DEBS); }
	@$(BIN)/python -c "import gpaw, gpaw_data" 2>/dev/null || CC=g++ $(BIN)/python -m pip install --quiet -e '.[gpaw]'

# The first aluminium potentials in potentials/ (see potentials/al_start.toml).
potentials: lammps
	$(BIN)/lammps-al structures build/al_start/structures
	$(BIN)/lammps-al label potentials/al_start.toml
	$(BIN)/lammps-al fit potentials/al_start.toml --model linear --name Al_linear
	$(BIN)/lammps-al fit potentials/al_start.toml --model quadratic --name Al_quadratic

unit: setup
	$(BIN)/python -m pytest -ra tests/unit $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
