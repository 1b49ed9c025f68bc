"""The LAMMPS side of a lammps_al potential: the ML-IAP adapter and the per-atom uncertainty it writes.

Two ways to run a potential in LAMMPS, same potential file, same uncertainty:

- **mliappy** (``NAME.mliappy.lammps``): forces from the Python model through ``pair_style mliap model
  mliappy``. The model also writes each atom's score into the per-atom property ``d_lal_sigma`` every
  ``lal_score_every`` steps, from the descriptors LAMMPS computed for the forces anyway.
- **native** (``NAME.snap.lammps``, SNAP models only): forces from LAMMPS's own ``pair_style snap`` with the
  exported coefficients; a ``fix python/invoke`` computes the descriptors (``compute sna/atom``) only on
  scoring steps and writes the same score.

Either way ``dump custom ... d_lal_sigma`` writes it; the snippets also define the per-atom compute
``c_lal_sigma_atom`` (for ``compute reduce``, which does not take ``d_`` names) and ``c_lal_max_sigma``. Rows of
the ML-IAP arrays are neighbour-list atoms; lammps_al's build patches the coupling to tell the model each
row's local atom index (``set_atom_indices``), so every value lands on the right atom on every rank,
whatever the list order and with hybrid/overlay too.

When Python drives LAMMPS (``lammps.lammps(...)``), call :func:`activate` with the instance *before* the
``pair_style`` command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lammps_al.core.errors import InputScriptError, LammpsAlError, PotentialError
from lammps_al.models.registry import DESCRIPTORS, FORCE_FEATURES
from lammps_al.inrun.callbacks import abort_all, fail_setup, guarded, lammps_handle, string_variable

PROPERTY = "lal_sigma"


def activate(lmp) -> None:
    """Make ML-IAP's Cython coupling importable in a Python process that drives LAMMPS."""
    import lammps.mliap

    lammps.mliap.activate_mliappy(lmp)


def load_model(model) -> None:
    """Attach ``model`` to the one ``mliappy LATER`` model waiting in the current LAMMPS instance."""
    import lammps.mliap

    lammps.mliap.load_model(model)


def check_descriptor_file(potential, path: str) -> None:
    """The ML-IAP descriptor file LAMMPS reads must describe the potential's descriptors."""
    values: dict[str, list[str]] = {}
    try:
        for line in open(path):
            words = line.split("#")[0].split()
            if words:
                values[words[0]] = words[1:]
    except (OSError, UnicodeDecodeError) as exc:
        raise PotentialError(f"cannot read descriptor file {path}: {exc}") from None
    d = potential.descriptor
    expected = {"elems": list(d.elements), "nelems": [str(len(d.elements))], "twojmax": [str(d.twojmax)]}
    for key, want in expected.items():
        if values.get(key) != want:
            raise PotentialError(f"descriptor file {path} has {key} {values.get(key)}, but the potential was fitted "
                                 f"with {key} {want}: use the .mliap.descriptor written with it")
    numbers = (("rcutfac", [d.rcutfac]), ("rfac0", [d.rfac0]), ("rmin0", [d.rmin0]), ("radelems", list(d.radelem)),
               ("welems", list(d.wj)))
    for key, want in numbers:
        try:
            got = [float(v) for v in values.get(key, ["nan"])]
        except ValueError:
            got = [float("nan")]
        if len(got) != len(want) or not np.allclose(got, want, rtol=1e-12, atol=0.0):
            raise PotentialError(f"descriptor file {path} has {key} {values.get(key)}, but the potential was fitted "
                                 f"with {key} {want}: use the .mliap.descriptor written with it")
    for key, default in (("bzeroflag", "1"), ("switchflag", "1"), ("chemflag", "0")):   # ML-IAP's defaults
        if values.get(key, [default]) != [str(getattr(d, key))]:
            raise PotentialError(f"descriptor file {path} has {key} {values.get(key, [default])}, but the potential "
                                 f"was fitted with {key} {getattr(d, key)}: use the .mliap.descriptor written with it")


def locate(ptr, name: str, potdir: str, default_potdir: str = "", potential_hash: str = "") -> None:
    """Called first by a potential snippet: when ``potdir/NAME.npz`` is missing and ``potdir`` is still the
    snippet's default, use lammps_al's shipped copy of the same potential (same content hash) by pointing
    ``lal_potdir`` there (the shipped snippets then work from any folder); otherwise stop with a message
    naming the file and how to point at it."""
    lmp = lammps_handle(ptr)
    wanted = Path(potdir) / f"{name}.npz"
    if wanted.is_file():
        return
    if potdir == default_potdir and potential_hash:
        from lammps_al.core.potential import load
        from lammps_al.core.resources import shipped_dir

        try:
            shipped = shipped_dir("potentials")
            if load(shipped / f"{name}.npz").content_hash() == potential_hash:
                lmp.command("variable lal_potdir delete")
                lmp.command(f"variable lal_potdir index {shipped}")
                return
        except LammpsAlError:
            pass
    fail_setup(f"potential {name}: {wanted} does not exist (lal_potdir = {potdir!r}, relative to {Path.cwd()}); "
               f"pass the folder that holds {name}.npz with -var lal_potdir DIR", lmp)


def _atom_types(lmp) -> int:
    return int(lmp.extract_global("ntypes"))


def check_potential(ptr, path: str, descriptor_file: str = "", elements: str = "") -> None:
    """Before any pair style is set up: the potential file loads and its model can be built, it matches its
    descriptor file, and ``lal_elements`` names one of its elements (or NULL) for every atom type. Stops
    LAMMPS with a clear message otherwise, on every rank (each rank runs the same check)."""
    from lammps_al.core.potential import load
    from lammps_al.models.registry import model_for

    lmp = lammps_handle(ptr)
    try:
        potential = load(path)
        model_for(potential)
        if descriptor_file and descriptor_file != "none":
            check_descriptor_file(potential, descriptor_file)
        names = elements.split()
        for element in names:
            if element != "NULL" and element not in potential.elements:
                raise InputScriptError(f"lal_elements names element {element!r}, but {path} is a potential for "
                                       f"{list(potential.elements)}; set lal_elements to one of those per atom type "
                                       f"(e.g. -var lal_elements \"{' '.join(potential.elements)}\")")
        ntypes = _atom_types(lmp)
        if ntypes and len(names) != ntypes:
            raise InputScriptError(f"the box has {ntypes} atom type(s) but lal_elements = {elements!r} names "
                                   f"{len(names)}: give one element of {list(potential.elements)} (or NULL) per atom "
                                   f"type, e.g. -var lal_elements \"{' '.join([potential.elements[0]] * ntypes)}\"")
        check_masses(lmp, names)
    except LammpsAlError as exc:
        fail_setup(str(exc), lmp)


MASS_TOLERANCE = 0.01        # relative: a type's mass may differ this much from its element's standard mass


def check_masses(lmp, names: list[str]) -> None:
    """Every atom type whose mass is set already must weigh what its element in ``lal_elements`` weighs (to
    1 %): a type map that contradicts the masses (Cu atoms with aluminium's mass) runs the wrong dynamics
    silently. Types without a mass yet are LAMMPS's to refuse at ``run``."""
    import ctypes

    from ase.data import atomic_masses, atomic_numbers

    ntypes = _atom_types(lmp)
    if not ntypes or len(names) != ntypes:
        return
    pointer = lmp.extract_atom("mass", 2)              # per-type array, index 1..ntypes; 0.0 where unset
    if not pointer:
        return
    masses = ctypes.cast(pointer, ctypes.POINTER(ctypes.c_double))
    for t, name in enumerate(names, 1):
        mass = float(masses[t])
        if name == "NULL" or mass == 0.0:
            continue
        expected = float(atomic_masses[atomic_numbers[name]])
        if abs(mass - expected) > MASS_TOLERANCE * expected:
            heavier = min(atomic_numbers, key=lambda e: abs(atomic_masses[atomic_numbers[e]] - mass)
                          if atomic_numbers[e] > 0 else 1e9)
            raise InputScriptError(f"atom type {t} has mass {mass:g} g/mol but lal_elements maps it to {name} "
                                   f"({expected:.4g} g/mol; {mass:g} g/mol is the mass of {heavier}): set "
                                   f"'mass {t} {expected:.4f}' or map type {t} to its own element in lal_elements")


class ScoredModel:
    """An ML-IAP model that also writes each atom's uncertainty into ``d_lal_sigma`` every N steps."""

    def __init__(self, model, scorer, lmp, every: int, potential, scorer_name: str = "",
                 property_name: str = PROPERTY):
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
            self._score_guarded(elems, descriptors)

    @guarded
    def _score_guarded(self, elems, descriptors) -> None:
        self.score(elems, descriptors)

    def score(self, elems, descriptors) -> None:
        if self._iatoms is None:
            raise InputScriptError(
                "this LAMMPS does not tell Python models which atom each row is (its ML-IAP coupling lacks "
                "lammps_al's patch): build LAMMPS with 'lammps-al build' to get per-atom uncertainty")
        from lammps import LAMMPS_DOUBLE

        descriptors = np.asarray(descriptors)
        local = self._iatoms < self._nlocal
        if self.scorer.inputs == DESCRIPTORS:       # force-feature scorers write sigma in score_forces
            sigma = self.scorer(np.asarray(elems), descriptors)
            values = self.lmp.numpy.extract_atom(f"d_{self.property}", LAMMPS_DOUBLE, self._nlocal)
            if values is None:
                raise InputScriptError(f"per-atom property d_{self.property} does not exist: define it with "
                                       f"'fix {self.property} all property/atom d_{self.property}' (the snippet "
                                       f"does)")
            values[self._iatoms[local]] = sigma[local]
        last = np.zeros((self._nlocal, descriptors.shape[1]))
        last[self._iatoms[local]] = descriptors[local]
        self.last_descriptors = last


def _scoring_setup(path: str, scorer: str, every):
    """The potential, its model and the scorer asked for; a clear error when they do not fit together."""
    from lammps_al.core.potential import load
    from lammps_al.models.registry import make_scorer, model_for

    potential = load(path)
    model = model_for(potential)
    try:
        every = int(every)
    except (TypeError, ValueError):
        raise InputScriptError(f"lal_score_every must be a positive number of steps, got {every!r}") from None
    if every <= 0:
        raise InputScriptError(f"lal_score_every must be a positive number of steps, got {every}")
    return potential, model, make_scorer(potential, model, scorer), every


def load_potential(ptr, path: str, descriptor_file: str = "", scorer: str = "bayes", every: int = 1):
    """Load a potential file (no unpickling) and attach its model, with per-atom scoring, to ``mliappy LATER``.

    Called by ``NAME.mliappy.lammps`` through ``python lal_load_potential input 5 SELF ... invoke``.
    """
    lmp = lammps_handle(ptr)
    try:
        potential, model, scoring, every = _scoring_setup(path, scorer, every)
        if descriptor_file:
            check_descriptor_file(potential, descriptor_file)
        scored = ScoredModel(model, scoring, lmp, every, potential=potential, scorer_name=scorer)
        if scoring is not None and scoring.inputs == FORCE_FEATURES:
            setup_force_scoring(lmp, potential, scoring, every)
    except LammpsAlError as exc:
        fail_setup(str(exc), lmp)
    load_model(scored)
    _register(scored)
    return scored


# ---- scorers of force features: compute snad/atom on scoring steps ------------------------------------

SNAD_COMPUTE = "lal_snad"


class ForceScoring:
    """Writes a force-feature scorer's value (e.g. bayes_force, eV/A) into d_lal_sigma from ``compute snad/atom``
    (J_j = sum_i dphi_i/dr_j per atom type block, x, y, z), on scoring steps, after the forces."""

    def __init__(self, potential, scorer, type_to_element: np.ndarray):
        self.scorer = scorer
        self.n_elements = len(potential.elements)
        d = potential.descriptor
        self.n_values = d.n_features
        self.type_to_element = type_to_element

    def __call__(self, lmp) -> None:
        from lammps import LAMMPS_DOUBLE, LAMMPS_INT, LMP_STYLE_ATOM, LMP_TYPE_ARRAY

        nlocal = int(lmp.extract_global("nlocal"))
        if nlocal == 0:         # the compute's reverse communication is collective: a rank without atoms
            lmp.extract_compute(SNAD_COMPUTE, LMP_STYLE_ATOM, LMP_TYPE_ARRAY)   # joins it (else all hang)
            return
        values = lmp.numpy.extract_atom(f"d_{PROPERTY}", LAMMPS_DOUBLE, nlocal)
        snad = np.asarray(lmp.numpy.extract_compute(SNAD_COMPUTE, LMP_STYLE_ATOM, LMP_TYPE_ARRAY))[:nlocal]
        ntypes = len(self.type_to_element) - 1
        blocks = snad.reshape(nlocal, ntypes, 3, self.n_values)
        p = 1 + self.n_values
        J = np.zeros((nlocal, 3, self.n_elements * p))
        for t in range(1, ntypes + 1):
            e = self.type_to_element[t]
            if e >= 0:
                J[:, :, e * p + 1:(e + 1) * p] += blocks[:, t - 1]
        types = lmp.numpy.extract_atom("type", LAMMPS_INT, nlocal)[:nlocal]
        values[:nlocal] = self.scorer(self.type_to_element[types], J)


_FORCE: ForceScoring | None = None


def setup_force_scoring(lmp, potential, scorer, every: int) -> None:
    """Define ``compute snad/atom`` with the potential's settings and a post_force callback writing sigma."""
    global _FORCE
    elements = string_variable(lmp, "lal_elements", " ".join(potential.elements))
    _FORCE = ForceScoring(potential, scorer, element_map(potential, elements))
    lmp.commands_list([
        per_type_compute(potential, elements, SNAD_COMPUTE, "snad/atom",
                         f"quadraticflag {potential.descriptor.quadraticflag}"),
        f'python source here "from {__name__} import score_forces as lal_score_forces"',
        f"fix lal_score_force all python/invoke {every} post_force lal_score_forces"])


@guarded
def score_forces(ptr, vflag: int = 0) -> None:
    """``fix python/invoke`` callback of force-feature scorers; an exception aborts every rank (no hang)."""
    _FORCE(lammps_handle(ptr))


_ACTIVE = None


def _register(scoring) -> None:
    global _ACTIVE
    _ACTIVE = scoring


def active_scoring():
    """The scoring object of the potential loaded last in this process (ScoredModel or NativeScorer):
    ``potential``, ``scorer_name``, ``every`` and ``last_descriptors`` of the last scoring step."""
    return _ACTIVE


# ---- native mode: pair_style snap for forces, descriptors on scoring steps only ---------------------

class NativeScorer:
    """Scores atoms from ``compute sna/atom`` (B_i only, evaluated on scoring steps) for pair_style snap."""

    def __init__(self, potential, model, scorer, compute_id: str, every: int = 1, scorer_name: str = "",
                 property_name: str = PROPERTY, type_to_element: np.ndarray | None = None):
        self.model = model
        self.potential = potential
        self.scorer = scorer
        self.scorer_name = scorer_name
        self.every = int(every)
        self.last_descriptors: np.ndarray | None = None
        self.compute_id = compute_id
        self.property = property_name
        self.type_to_element = type_to_element

    def __call__(self, lmp) -> None:
        from lammps import LAMMPS_DOUBLE, LAMMPS_INT, LMP_STYLE_ATOM, LMP_TYPE_ARRAY

        if self.scorer is None:
            return
        nlocal = int(lmp.extract_global("nlocal"))
        values = lmp.numpy.extract_atom(f"d_{self.property}", LAMMPS_DOUBLE, nlocal)
        if nlocal == 0:         # computed on every rank all the same (computes may communicate)
            lmp.extract_compute(self.compute_id, LMP_STYLE_ATOM, LMP_TYPE_ARRAY)
            return
        B = lmp.numpy.extract_compute(self.compute_id, LMP_STYLE_ATOM, LMP_TYPE_ARRAY)
        types = lmp.numpy.extract_atom("type", LAMMPS_INT, nlocal)
        elems = self.type_to_element[types] if self.type_to_element is not None else types - 1
        descriptors = np.array(B[:nlocal, :self.model.n_descriptors])
        if self.scorer.inputs == DESCRIPTORS:       # force-feature scorers write sigma in score_forces
            values[:] = self.scorer(elems, descriptors)
        self.last_descriptors = descriptors


_NATIVE: NativeScorer | None = None


def element_map(potential, elements: str) -> np.ndarray:
    """Index = LAMMPS atom type (1-based), value = the potential's element index (-1 for NULL)."""
    names = elements.split()
    table = np.full(len(names) + 1, -1, dtype=np.int64)
    for t, name in enumerate(names, 1):
        if name != "NULL" and name not in potential.elements:
            raise InputScriptError(f"lal_elements names element {name!r} for atom type {t}, but the potential is for "
                                   f"{list(potential.elements)}; set lal_elements to one of those (or NULL) per atom "
                                   f"type")
        table[t] = potential.elements.index(name) if name != "NULL" else -1
    return table


def per_type_compute(potential, elements: str, compute_id: str, style: str = "sna/atom", extra: str = "") -> str:
    """``compute ID all STYLE`` (sna/atom, snad/atom) with the potential's settings for the atom types
    ``elements`` names: each type the radius, weight and (with chemflag) element index of its element; NULL
    types as the first element, never scored. ``extra``: more keywords."""
    d = potential.descriptor
    index = [potential.elements.index(n if n != "NULL" else potential.elements[0]) for n in elements.split()]
    keywords = [f"rmin0 {d.rmin0!r} bzeroflag {d.bzeroflag} switchflag {d.switchflag}", extra, d.chem_keywords(index)]
    return (f"compute {compute_id} all {style} {d.rcutfac!r} {d.rfac0!r} {d.twojmax} "
            + " ".join(repr(d.radelem[i]) for i in index) + " " + " ".join(repr(d.wj[i]) for i in index) + " "
            + " ".join(k for k in keywords if k))


def setup_native(ptr, path: str, scorer: str = "bayes", every: int = 1, compute_id: str = "lal_sna") -> None:
    """Prepare the native-mode scorer (called once by ``NAME.snap.lammps``)."""
    global _NATIVE
    lmp = lammps_handle(ptr)
    try:
        potential, model, scoring, every = _scoring_setup(path, scorer, every)
        elements = string_variable(lmp, "lal_elements", " ".join(potential.elements))
        types = element_map(potential, elements)
        lmp.command(per_type_compute(potential, elements, compute_id))
        _NATIVE = NativeScorer(potential, model, scoring, compute_id, every=every, scorer_name=scorer,
                               type_to_element=types)
        if scoring is not None and scoring.inputs == FORCE_FEATURES:
            setup_force_scoring(lmp, potential, scoring, every)
    except LammpsAlError as exc:
        fail_setup(str(exc), lmp)
    _register(_NATIVE)


@guarded
def score_native(ptr, vflag: int = 0) -> None:
    """``fix python/invoke`` callback of native mode; an exception aborts every rank (no hang)."""
    _NATIVE(lammps_handle(ptr))


__all__ = ["activate", "load_model", "locate", "check_potential", "load_potential", "setup_native", "score_native",
           "active_scoring", "ScoredModel", "NativeScorer", "abort_all"]
