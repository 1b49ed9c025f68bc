"""External regression: LAMMPS's force-style unit-test YAML files, run through this build.

``unittest/force-styles/tests/manybody-pair-snap.yaml`` and ``manybody-pair-mliap_snap_linear.yaml``
hold energies, forces and virials of a 64-atom, 8-type Ta cell from LAMMPS's own test harness. They are
replayed here the way ``test_pair_style.cpp`` does (``run 0 post no``, then ``fix nve`` and ``run 4``)
and compared with the tolerance the YAML states (``epsilon``; 5x for forces after the run), the harness's
relative error ``|a-b| / min(|a|,|b|)``. The linear YAML is replayed a second time with the pair style
swapped for ``mliap model mliappy`` and lammps_al's :class:`LinearSNAP`: the same numbers must come out.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

DRIVER = textwrap.dedent('''\
    import json, sys
    import numpy as np
    from mpi4py import MPI
    import lammps
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR
    from lammps_al.inrun.adapter import activate, load_model
    from lammps_al.models.snap import LinearSNAP

    case = json.load(open(sys.argv[1]))
    lmp = lammps.lammps(comm=MPI.COMM_WORLD, cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    activate(lmp)
    cmd = lmp.command
    cmd("variable newton_pair index on")
    cmd(f"variable input_dir index {case['input_dir']}")
    for line in case["pre_commands"]:
        cmd(line)
    lmp.file(case["input_file"])
    cmd("pair_style " + case["pair_style"])
    for line in case["pair_coeff"]:
        cmd("pair_coeff " + line)
    if case["model_file"]:
        load_model(LinearSNAP.from_mliap_model_file(case["model_file"]))
    cmd("pair_modify table 0")
    cmd("compute pairvirial all pressure NULL pair")
    cmd("thermo_style custom step evdwl c_pairvirial[*]")

    def snapshot():
        nktv2p = lmp.extract_global("nktv2p")
        volume = lmp.get_thermo("vol")
        pressure = lmp.numpy.extract_compute("pairvirial", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
        virial = [float(p) * volume / nktv2p for p in pressure[:6]]
        forces = np.array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)
        return {"vdwl": lmp.get_thermo("evdwl"), "stress": virial, "forces": forces.tolist()}

    cmd("run 0 post no")
    init = snapshot()
    cmd("fix 1 all nve")
    cmd("compute pe all pe/atom pair")
    cmd("compute sum all reduce sum c_pe")
    cmd("thermo 2")
    cmd("run 4 post no")
    run = snapshot()
    if MPI.COMM_WORLD.rank == 0:
        json.dump({"init": init, "run": run}, open("result.json", "w"))
    lmp.close()
''')


def harness_error(a, b) -> np.ndarray:
    """test_main.h's EXPECT_FP_LE_WITH_EPS: |a-b| / min(|a|,|b|), or |a-b| when that minimum is 0."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = np.abs(a - b)
    div = np.minimum(np.abs(a), np.abs(b))
    return np.where(div == 0.0, diff, diff / np.where(div == 0.0, 1.0, div))


def parse_rows(block: str) -> np.ndarray:
    """'id fx fy fz' lines -> (natoms, 3) array ordered by atom ID."""
    rows = [line.split() for line in block.strip().splitlines()]
    ids = np.array([int(r[0]) for r in rows])
    values = np.array([[float(x) for x in r[1:]] for r in rows])
    out = np.empty_like(values)
    out[ids - 1] = values
    return out


CASES = {
    "snap": ("manybody-pair-snap.yaml", None),
    "mliap_linear": ("manybody-pair-mliap_snap_linear.yaml", None),
    "mliappy_linear": ("manybody-pair-mliap_snap_linear.yaml",
                       "hybrid/overlay zbl 4.0 4.8 mliap model mliappy LATER descriptor sna Ta06A.mliap.descriptor"),
}


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
@pytest.mark.parametrize("case", list(CASES))
def test_force_style_yaml(runner, reference_dir, lammps_install, case, nprocs):
    """Energies, virials and forces equal the YAML reference within its stated epsilon."""
    yaml_name, mliappy_style = CASES[case]
    tests_dir = reference_dir / "unittest/force-styles/tests"
    ref = yaml.safe_load((tests_dir / yaml_name).read_text())
    potentials = Path(lammps_install["potentials_dir"])
    spec = {
        "input_dir": str(tests_dir),
        "input_file": str(tests_dir / ref["input_file"]),
        "pre_commands": [line for line in ref["pre_commands"].splitlines() if line.strip()],
        "pair_style": mliappy_style or ref["pair_style"],
        "pair_coeff": [line for line in ref["pair_coeff"].splitlines() if line.strip()],
        "model_file": str(potentials / "Ta06A.mliap.model") if mliappy_style else None,
    }
    (runner.workdir / "case.json").write_text(json.dumps(spec))
    (runner.workdir / "driver.py").write_text(DRIVER)
    runner.python("driver.py", nprocs=nprocs, extra=["case.json"])
    got = json.loads((runner.workdir / "result.json").read_text())
    eps = float(ref["epsilon"])
    checks = [
        ("init_vdwl", got["init"]["vdwl"], ref["init_vdwl"], eps),
        ("init_stress", got["init"]["stress"], [float(x) for x in ref["init_stress"].split()], eps),
        ("init_forces", got["init"]["forces"], parse_rows(ref["init_forces"]), eps),
        ("run_vdwl", got["run"]["vdwl"], ref["run_vdwl"], eps),
        ("run_stress", got["run"]["stress"], [float(x) for x in ref["run_stress"].split()], eps),
        ("run_forces", got["run"]["forces"], parse_rows(ref["run_forces"]), 5 * eps),
    ]
    for name, value, expected, tol in checks:
        err = harness_error(value, expected)
        assert np.max(err) <= tol, f"{case} ({nprocs} ranks): {name} max relative error {np.max(err):.3e} > {tol:.1e}"
