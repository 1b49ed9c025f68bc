"""The active-learning loop, one module per stage: ``start`` (the starting set), ``explore`` (MD with the
fix, concurrently on an executor), ``select``, ``label``, ``calibrate``, ``fit`` (refit and held-out errors),
``report`` (summaries and plots); ``stages`` owns resume semantics, ``driver`` strings them together,
``config`` reads ``[loop]`` and ``[[explore]]``."""
