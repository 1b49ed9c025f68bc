"""Every record that crosses a stage boundary, with its writer and its reader side by side.

What the uncertainty fix writes while LAMMPS runs (read by the loop, ``lammps-al flagged`` and the
benchmarks):

- :class:`FlaggedEntry`: one line of ``OUTDIR/manifest.jsonl`` per flagged file;
- :class:`RunLogRow`: one line of ``OUTDIR/runs/RUN_ID.csv`` per scoring step;
- :class:`RunStatus`: ``OUTDIR/runs/RUN_ID.json``, "started" or "halted" (and why);

what a fit stores for the fix's thresholds: :class:`ScoreStats` (training-set percentiles of a scorer, in
the potential's ``extra["training_scores"]``); the labelled store's manifest line, :class:`LabelRecord`; and
the loop's stage markers (``iter_NNN/STAGE.json``, written atomically when a stage ends, read by ``--resume``)
with the history of a loop. Nothing else reads or writes these files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from lammps_al.core.errors import LoopError, StoreError
from lammps_al.core.io import append_jsonl, atomic_write_text, disk_error, json_default, read_jsonl
from lammps_al.core.schema import SchemaError, from_mapping, to_mapping

# ---- the fix's output folder ------------------------------------------------------------------------

FLAGGED_MANIFEST = "manifest.jsonl"
RUNS_FOLDER = "runs"

# A flagged configuration is an extxyz file whose per-atom columns and header keys are named here: written
# by the fix, read by selection, labelling (which keeps the columns) and the fit (which gives buffer atoms'
# forces weight 0 and ignores a local environment's energy and stress).
ID_COLUMN = "id"                    # LAMMPS atom ID
SIGMA_COLUMN = "per_atom_sigma"     # the atom's score at the flagged step
FLAGGED_COLUMN = "flagged"          # at or above the flag threshold (a local environment: its centre)
BUFFER_COLUMN = "buffer"            # a local environment's atoms beyond the cutoff from its centre
VELOCITY_COLUMN = "vel_A_per_ps"
LOCAL_ENVIRONMENT = "local_environment"   # header key: the cell is a neighbourhood cut from a larger one
KEPT_COLUMNS = (ID_COLUMN, FLAGGED_COLUMN, BUFFER_COLUMN, SIGMA_COLUMN)


@dataclass(frozen=True)
class FlaggedEntry:
    """A configuration (or a local environment cut from one) that the fix wrote.

    ``file`` is relative to the fix's output folder; ``max_sigma`` is the global max per-atom score at that
    step (units of the scorer); ``seconds`` what gathering and writing it cost on rank 0.
    """

    file: str
    kind: Literal["configuration", "local_environment"]
    natoms: int
    step: int
    run_id: str
    max_sigma: float
    time_ps: float = 0.0
    source_natoms: int = 0
    temperature_K: float = 0.0
    scorer: str = ""
    flag_threshold: float = 0.0
    halt_threshold: float = 0.0
    potential_hash: str = ""
    nranks: int = 1
    input_script: str = ""
    halt: bool = False
    n_flagged: int = 0
    max_sigma_id: int | None = None
    center_id: int | None = None
    cutoff: float | None = None
    buffer_width: float | None = None
    seconds: float = 0.0


def append_flagged(outdir: Path, entry: FlaggedEntry) -> None:
    append_jsonl(Path(outdir) / FLAGGED_MANIFEST, to_mapping(entry))


def read_flagged(outdir: Path, existing_only: bool = False) -> list[FlaggedEntry]:
    """The fix's manifest in ``outdir`` ([] if none); ``existing_only`` drops entries whose file is gone."""
    outdir = Path(outdir)
    path = outdir / FLAGGED_MANIFEST
    out = []
    for i, raw in enumerate(read_jsonl(path)):
        raw = dict(raw)
        for legacy in ("write_seconds", "cut_seconds"):   # manifests written before these records existed
            if legacy in raw:
                raw.setdefault("seconds", raw.pop(legacy))
        try:
            entry = from_mapping(FlaggedEntry, raw, f"{path} line {i + 1}", unknown="ignore")
        except SchemaError as exc:
            raise StoreError(f"{exc} (a flagged-configuration manifest written by the lammps_al fix)") from None
        if not existing_only or (outdir / entry.file).is_file():
            out.append(entry)
    return out


RUN_LOG_COLUMNS = ("step", "time_ps", "temp_K", "max_sigma", "mean_sigma", "n_above_flag", "natoms", "action",
                   "fix_ms", "crystalline", "undercoordinated", "rms_sigma")


@dataclass(frozen=True)
class RunLogRow:
    """One scoring step of a run: global max and mean per-atom score, atoms at or above the flag threshold,
    what the fix did (none, flag, write, halt) and its own time on rank 0 (ms)."""

    step: int
    time_ps: float
    temp_K: float
    max_sigma: float
    mean_sigma: float
    n_above_flag: int
    natoms: int
    action: Literal["none", "flag", "write", "halt"]
    fix_ms: float = 0.0
    crystalline: float = -1.0        # fraction of atoms in fcc/hcp/bcc surroundings (CNA); -1: not classified
    undercoordinated: float = -1.0   # fraction with fewer than 4/5 of the bulk's neighbours (surfaces)
    rms_sigma: float = -1.0          # root mean square over the atoms (for a calibrated force scorer: the force
    #                                  RMSE it predicts for the configuration, eV/A)


def run_log_path(outdir: Path, run_id: str) -> Path:
    return Path(outdir) / RUNS_FOLDER / f"{run_id}.csv"


def append_run_log(path: Path, row: RunLogRow) -> None:
    """Append a row (the header first when the file is new)."""
    path = Path(path)
    line = ",".join(_csv_value(getattr(row, c)) for c in RUN_LOG_COLUMNS) + "\n"
    try:
        new = not path.exists()
        with open(path, "a") as fh:
            if new:
                fh.write(",".join(RUN_LOG_COLUMNS) + "\n")
            fh.write(line)
    except OSError as exc:
        raise disk_error(path, exc, len(line)) from exc


def _csv_value(v) -> str:
    return f"{v:.10g}" if isinstance(v, float) else str(v)


def read_run_log(path: Path) -> list[RunLogRow]:
    """The rows of a run log ([] if it does not exist); a torn last line is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    rows = list(csv.DictReader(io.StringIO(text)))
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(RunLogRow(step=int(r["step"]), time_ps=float(r["time_ps"]), temp_K=float(r["temp_K"]),
                                 max_sigma=float(r["max_sigma"]), mean_sigma=float(r["mean_sigma"]),
                                 n_above_flag=int(r["n_above_flag"]), natoms=int(r["natoms"]),
                                 action=r["action"], fix_ms=float(r.get("fix_ms") or 0.0),
                                 crystalline=float(r.get("crystalline") or -1.0),
                                 undercoordinated=float(r.get("undercoordinated") or -1.0),
                                 rms_sigma=float(r.get("rms_sigma") or -1.0)))
        except (KeyError, TypeError, ValueError) as exc:
            if i == len(rows) - 1:
                continue
            raise StoreError(f"{path}: row {i + 2} is malformed ({exc}); expected columns "
                             f"{','.join(RUN_LOG_COLUMNS)}") from None
    return out


@dataclass(frozen=True)
class RunStatus:
    """A run's state as the fix saw it: "started", or "halted" with ``reason``, ``step`` and ``max_sigma``.

    Whether a run that did not halt completed or crashed is told by its exit code (the fix sees no end of
    run); :class:`ExploreRunResult` combines the two."""

    run_id: str
    status: Literal["started", "halted"]
    reason: str = ""
    step: int | None = None
    max_sigma: float | None = None
    temperature_K: float | None = None
    halt_configuration: str = ""     # the whole configuration it halted on, with velocities (runs/RUN.halt.extxyz)
    input_script: str = ""
    nranks: int = 1
    potential_hash: str = ""
    settings: dict = field(default_factory=dict)
    host: str = ""
    updated: str = ""


def run_status_path(outdir: Path, run_id: str) -> Path:
    return Path(outdir) / RUNS_FOLDER / f"{run_id}.json"


def write_run_status(outdir: Path, status: RunStatus) -> None:
    atomic_write_text(run_status_path(outdir, status.run_id),
                      json.dumps(to_mapping(status), indent=2, default=json_default))


def read_run_status(path: Path) -> RunStatus | None:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return from_mapping(RunStatus, json.loads(path.read_text()), str(path), unknown="ignore")
    except (SchemaError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path} is not a run status written by the lammps_al fix: {exc}") from None


def read_run_statuses(outdir: Path) -> list[RunStatus]:
    return [s for p in sorted((Path(outdir) / RUNS_FOLDER).glob("*.json")) if (s := read_run_status(p))]


# ---- what a fit stores for the fix's thresholds -------------------------------------------------------

PERCENTILES = (50, 90, 95, 99, 99.9)


@dataclass(frozen=True)
class ScoreStats:
    """Distribution of one scorer's per-atom values over the training atoms (units of the scorer)."""

    count: int
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    p99_9: float
    max: float

    @classmethod
    def from_values(cls, values) -> "ScoreStats":
        v = np.asarray(values, dtype=float)
        p = np.percentile(v, PERCENTILES)
        return cls(int(v.size), float(v.mean()), *map(float, p), float(v.max()))

    def to_dict(self) -> dict:
        d = to_mapping(self)
        d["p99.9"] = d.pop("p99_9")
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "ScoreStats":
        d = dict(d)
        if "p99.9" in d:
            d["p99_9"] = d.pop("p99.9")
        return from_mapping(cls, d, where, unknown="ignore")


TRAINING_SCORES = "training_scores"


def write_training_scores(potential, stats: dict[str, ScoreStats]) -> None:
    """Store each scorer's training-set statistics in the potential (saved with it)."""
    potential.extra[TRAINING_SCORES] = {name: s.to_dict() for name, s in stats.items()}


def read_training_scores(potential, scorer: str) -> ScoreStats | None:
    from lammps_al.core.errors import PotentialError

    table = potential.extra.get(TRAINING_SCORES, {})
    raw = table.get(scorer) if isinstance(table, dict) else table
    if raw is None:
        return None
    where = f"training_scores.{scorer}"
    if not isinstance(raw, dict):
        raise PotentialError(f"the potential's training-score statistics are malformed: {where} must be a table, got "
                             f"{raw!r:.60}; refit with lammps-al fit, or give absolute thresholds (-var lal_flag X "
                             f"-var lal_halt Y)")
    try:
        stats = ScoreStats.from_dict(raw, where)
    except SchemaError as exc:
        raise PotentialError(f"the potential's training-score statistics are malformed: {exc}") from None
    if not 0 <= stats.p99_9 < np.inf:
        raise PotentialError(f"the potential's training-score statistics are malformed: {where} p99.9 must be a "
                             f"finite number >= 0, got {stats.p99_9}; refit with lammps-al fit, or give absolute "
                             f"thresholds (-var lal_flag X -var lal_halt Y)")
    return stats


# ---- the labelled store -------------------------------------------------------------------------------

@dataclass
class LabelRecord:
    """One line of a labelled store's manifest: a configuration (by structure hash) labelled by an oracle
    (by settings hash), or the failure to label it."""

    hash: str
    oracle: str
    oracle_hash: str
    status: Literal["ok", "failed"]
    group: str
    file: str | None = None
    natoms: int = 0
    error: str | None = None
    source: str | None = None
    seconds: float | None = None


def append_label_record(manifest: Path, record: LabelRecord) -> None:
    append_jsonl(manifest, to_mapping(record))


def read_label_records(manifest: Path) -> list[LabelRecord]:
    out = []
    for i, raw in enumerate(read_jsonl(manifest)):
        try:
            out.append(from_mapping(LabelRecord, raw, f"{manifest} line {i + 1}", unknown="ignore"))
        except SchemaError as exc:
            raise StoreError(f"{exc} (a labelled-store manifest)") from None
    return out


# ---- the loop's stage markers ------------------------------------------------------------------------

@dataclass(frozen=True)
class StartRecord:
    """Iteration 0's starting set: structures made, labelled now, failed; by structure kind."""

    STAGE: ClassVar[str] = "start"
    structures: int
    labelled: int
    failed: int
    seconds: float
    kinds: dict[str, int] = field(default_factory=dict)
    cost_natoms3: float = 0.0       # sum over the labelled cells of natoms^3 (how plane-wave DFT scales)
    max_natoms: int = 0


@dataclass(frozen=True)
class MaterialRecord:
    """What iteration k's potential says the element is like, for that iteration's exploration inputs: its
    lowest-energy crystal of the candidates and its lattice constant, bulk modulus and atomic volume, and
    the melting point the exploration temperatures are relative to (``tm_source``: from the last coexistence
    exploration run that ended with both phases, or the rule Tm ~ 0.011 B V / k_B before there is one), and the
    temperature the next coexistence run starts from (``tm_guess_K``)."""

    STAGE: ClassVar[str] = "material"
    element: str
    mass: float
    structure: str
    a0: float
    volume_A3: float
    bulk_modulus_GPa: float
    energies: dict[str, float]
    tm_K: float
    tm_source: str
    tm_guess_K: float | None = None   # where the next coexistence run starts (tm_K, moved after one melted or froze)
    elements: list[str] = field(default_factory=list)   # every element of the potential, the host (element) first
    masses: list[float] = field(default_factory=list)
    fcc_a: dict[str, float] = field(default_factory=dict)   # fcc lattice constant of each element by the model


@dataclass(frozen=True)
class ExploreRunResult:
    """One exploration run as the loop saw it: its exit code and the fix's records together."""

    name: str
    kind: str
    status: Literal["completed", "halted", "crashed"]
    seconds: float
    seed: int
    returncode: int = 0
    scoring_steps: int = 0
    flagged: bool = False
    mean_max_sigma: float | None = None
    max_sigma: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)
    rms_sigma: list[float] = field(default_factory=list)
    halt_reason: str = ""
    halt_step: int | None = None    # the step (of its own run) it halted at
    error: str = ""
    log: str = ""
    started: float = 0.0            # wall-clock time (epoch seconds) the run started and finished
    finished: float = 0.0
    host: str = ""
    reached: list[str] = field(default_factory=list)   # structure kinds the run visited (from the fix's log)
    continued_from: str = ""        # the halting configuration of an earlier iteration it started from
    melting: dict = field(default_factory=dict)         # a coexistence run: state, temperature_K, stderr_K


@dataclass(frozen=True)
class ExploreRecord:
    STAGE: ClassVar[str] = "explore"
    runs: dict[str, ExploreRunResult]
    trajectory_sigma: float | None
    flag_fraction: float
    crashed: list[str]
    halted: list[str]
    seconds: float


@dataclass(frozen=True)
class SelectedItem:
    file: str
    run_id: str
    kind: str
    max_sigma: float
    gain: float | None = None        # nats of information the pick gave the posterior (information selection)
    natoms: int | None = None


@dataclass(frozen=True)
class SelectRecord:
    STAGE: ClassVar[str] = "select"
    flagged: int
    selection: str
    selected: list[SelectedItem]
    close_contacts: list[str] = field(default_factory=list)   # left out: atoms closer than MD can bring them


@dataclass(frozen=True)
class LabelFailure:
    source: str
    error: str


@dataclass(frozen=True)
class LabelStageRecord:
    STAGE: ClassVar[str] = "label"
    labelled: int
    skipped: int
    failed: list[LabelFailure]
    seconds: float
    cost_natoms3: float = 0.0       # sum over the cells labelled now of natoms^3
    oracle_seconds: float = 0.0     # the oracle's own time, summed over its calls


@dataclass(frozen=True)
class CalibrationRecord:
    """Predicted energy sigma per atom of the newly labelled configurations (from the potential that flagged
    them) against their actual error: RMS error / RMS sigma (``scale``) and the Spearman correlation."""

    STAGE: ClassVar[str] = "calibration"
    n: int
    spearman: float | None = None
    scale: float | None = None
    sigma: list[float] = field(default_factory=list)
    energy_error_per_atom: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ElasticRecord:
    """How well iteration k's potential knows its crystal's elastic constants and vacancy formation energy (the
    posterior of C11, C12, C44 and the unrelaxed E_vac at its own lattice constant, each linear in the
    coefficients), the cells labelled when it did not know them well enough (per group), and the factors on
    the default weights the next fits give those groups' stress (elastic) and energy (vacancy) rows
    (:mod:`lammps_al.loop.elastic`)."""

    STAGE: ClassVar[str] = "elastic"
    structure: str = ""
    a0: float = 0.0
    constants: dict[str, float] = field(default_factory=dict)          # C11/C12/C44 GPa, E_vac eV
    sigma_relative: dict[str, float] = field(default_factory=dict)      # posterior std / |value|, this potential
    calibration_scale: float = 1.0        # the std's factor (the loop's last RMS actual / predicted, at least 1)
    labelled: dict[str, int] = field(default_factory=dict)   # per group checked: its cells of this iteration
    cost_natoms3: float = 0.0
    stress_factor: float = 1.0             # on the default stress weight, for the elastic group's stress rows
    vacancy_energy_factor: float = 1.0     # on the default energy weight, for the vacancy group's energy row
    predicted_sigma_relative: dict[str, float] = field(default_factory=dict)   # with the new cells and factors
    skipped: str = ""
    seconds: float = 0.0
    oracle_constants: dict[str, float] = field(default_factory=dict)   # C11/C12/C44 GPa by the oracle's stresses
    warning: str = ""                     # the oracle's constants fail Born's conditions: not weighed up


@dataclass(frozen=True)
class FitRecord:
    STAGE: ClassVar[str] = "fit"
    potential: str
    n_configurations: int
    train: dict
    test: dict
    seconds: float
    model: str = ""                  # the model fitted (KIND:TWOJMAX when chosen by the fitter)
    selection: dict = field(default_factory=dict)   # the candidates' scores when the fitter chose the model
    cost_natoms3: float = 0.0        # sum of natoms^3 over every configuration labelled so far (the store)


@dataclass(frozen=True)
class HeldOutRecord:
    """Errors of a potential on the held-out reference set (``skipped`` says why there are none)."""

    STAGE: ClassVar[str] = "held_out"
    snapshots: int = 0
    energy_rmse_eV_atom: float | None = None
    force_rmse_eV_A: float | None = None
    spearman_sigma_vs_force_error: float | None = None
    skipped: str = ""
    sigma: list[float] = field(default_factory=list)
    force_rmse_per_snapshot: list[float] = field(default_factory=list)
    calibration: dict = field(default_factory=dict)   # per scorer: RMS actual / RMS predicted force error
    force_rmse_per_element: dict[str, float] = field(default_factory=dict)   # eV/A, the atoms of each element
    force_rmse_per_kind: dict[str, float] = field(default_factory=dict)      # eV/A, per system (and composition)
    energy_error_per_snapshot: list[float] = field(default_factory=list)     # learned - reference, eV/atom


@dataclass(frozen=True)
class HeldOutSummary:
    energy_rmse_eV_atom: float | None = None
    force_rmse_eV_A: float | None = None
    spearman_sigma_vs_force_error: float | None = None
    force_error_ratio: float | None = None     # RMS actual / RMS predicted force error, of ``ratio_scorer``
    ratio_scorer: str = ""

    @classmethod
    def of(cls, record: HeldOutRecord) -> "HeldOutSummary":
        scorer = next((n for n in ("bayes_force", *record.calibration) if n in record.calibration), "")
        ratio = record.calibration.get(scorer, {}).get("ratio") if scorer else None
        return cls(record.energy_rmse_eV_atom, record.force_rmse_eV_A, record.spearman_sigma_vs_force_error,
                   ratio, scorer)


@dataclass(frozen=True)
class LearningPoint:
    labels_total: int
    held_out: HeldOutSummary
    cost_natoms3: float = 0.0
    model: str = ""


@dataclass(frozen=True)
class IterationSummary:
    iteration: int
    trajectory_sigma: float | None
    flag_fraction: float
    flagged: int
    selected: int
    labelled: int
    labels_total: int
    held_out: HeldOutSummary
    calibration_n: int = 0
    calibration_spearman: float | None = None
    calibration_scale: float | None = None
    test: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    crashed: list[str] = field(default_factory=list)
    halted: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    cost_natoms3: float = 0.0        # all labels so far: sum of natoms^3
    model: str = ""                  # the refit's model, and the runner-up when the fitter chose it
    runner_up: str = ""
    reached: list[str] = field(default_factory=list)   # structure kinds the exploration runs reached
    elastic: str = ""                # the elastic-constant check of this iteration's potential, one line


@dataclass(frozen=True)
class History:
    """``WORKDIR/history.json``: the learning curve's first point, one summary per iteration, the result."""

    STAGE: ClassVar[str] = "history"
    start: LearningPoint | None = None
    iterations: list[IterationSummary] = field(default_factory=list)
    final_potential: str = ""
    converged: bool = False


def marker_path(directory: Path, cls) -> Path:
    return Path(directory) / f"{cls.STAGE}.json"


def write_marker(directory: Path, record):
    """Write ``record`` as ``directory/STAGE.json`` atomically and return it. A failure says that every label
    so far is kept and how to continue."""
    path = marker_path(directory, type(record))
    try:
        atomic_write_text(path, json.dumps(to_mapping(record), indent=2, default=json_default) + "\n")
    except StoreError as exc:
        raise LoopError(f"{exc}. Every label so far is kept; free space (or fix the folder) and continue with "
                        f"lammps-al loop CONFIG --resume") from exc
    return record


def read_marker(directory: Path, cls):
    """The record of stage ``cls.STAGE`` in ``directory``, or None when that stage has not finished."""
    path = marker_path(directory, cls)
    if not path.is_file():
        return None
    try:
        return from_mapping(cls, json.loads(path.read_text()), str(path), unknown="ignore")
    except (SchemaError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LoopError(f"{path} is not a {cls.STAGE} stage marker ({exc}); remove it to run that stage again "
                        f"with --resume") from None


def replace(record, **changes):
    return dataclasses.replace(record, **changes)
