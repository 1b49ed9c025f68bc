"""On-the-fly learning inside one running LAMMPS job (``in_files/lammps_al_otf.lammps``).

While a run goes on, the uncertainty fix flags and writes configurations; rank 0 labels them with the
oracle (confined to ``MPI.COMM_SELF``), adds their rows to the Bayesian posterior in place
(:class:`~lammps_al.train.solvers.BayesianUpdate`, the evidence maximised again every K labels), writes the
potential atomically, and one broadcast puts the new coefficients and covariance into the running model on
every rank: the same trajectory goes on, no ``run`` restart, no new ``pair_style``. The other ranks wait in
that broadcast. The flag threshold follows the recent history of the error; learning stops once the
trajectory-averaged error has stayed below a target for a set simulated time, and resumes if the error passes
the last flag threshold again (a heating ramp reaching what the model has not seen).

- :mod:`~lammps_al.otf.config`: the OTF config (a fit config's [oracle], [fit], [groups] plus [otf]);
- :mod:`~lammps_al.otf.learner`: rank 0's side (labels, posterior, files);
- :mod:`~lammps_al.otf.callbacks`: what every rank runs from the snippet.
"""
