# lammps_al front door.
#   make demo   set everything up (venv, LAMMPS build, cached per machine) and run the main job
#   make test   set everything up and run the test suite
# Variables: PYTHON (the interpreter for the venv), VENV (its folder), LAMMPS_AL_SOURCE (your own LAMMPS
# tree or tarball), PYTEST_ARGS (extra pytest arguments).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lammps_al-installed
PYTEST_ARGS ?=

.PHONY: setup lammps info demo test unit clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

lammps: setup
	$(BIN)/lammps-al build

info: lammps
	$(BIN)/lammps-al info

demo: lammps
	$(BIN)/lammps-al info
	$(BIN)/lammps-al regression

test: lammps
	$(BIN)/lammps-al info
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

unit: setup
	$(BIN)/python -m pytest -ra tests/unit $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
