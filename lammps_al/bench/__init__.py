"""Benchmarks that print figures and ratios measured side by side in one run (never a timed test):
``fit`` (descriptor throughput), ``model`` (the potentials in LAMMPS), ``fix`` (the uncertainty fix's cost),
``selection`` (the loop against random selection), ``explore`` (exploration runs one after another vs
concurrently on the executor)."""
