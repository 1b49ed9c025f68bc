"""Summarise a folder of flagged configurations: counts, score distribution, where they came from.

Reads OUTDIR/manifest.jsonl and the run records in OUTDIR/runs written by the uncertainty fix.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from lammps_al.core.errors import ConfigError
from lammps_al.core.records import read_flagged, read_run_log, read_run_statuses, run_log_path


def add_arguments(parser) -> None:
    parser.add_argument("outdir", type=Path, help="the fix's output folder (lal_fix_outdir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def summarise(outdir: Path) -> dict:
    if not outdir.is_dir():
        raise ConfigError(f"{outdir} is not a folder of flagged configurations (the fix's lal_fix_outdir)")
    entries = read_flagged(outdir)
    missing = [e.file for e in entries if not (outdir / e.file).is_file()]
    runs = {}
    for status in read_run_statuses(outdir):
        rows = read_run_log(run_log_path(outdir, status.run_id))
        sig = np.array([r.max_sigma for r in rows])
        runs[status.run_id] = {"status": status.status, "reason": status.reason,
                               "input_script": status.input_script, "nranks": status.nranks,
                               "scoring_steps": len(rows), "flag_steps": sum(r.action != "none" for r in rows),
                               "mean_max_sigma": float(sig.mean()) if sig.size else None}
    sigmas = np.array([e.max_sigma for e in entries])
    return {
        "folder": str(outdir), "configurations": len(entries),
        "by_kind": dict(Counter(e.kind for e in entries)),
        "by_input_script": dict(Counter(e.input_script or "?" for e in entries)),
        "by_run": dict(Counter(e.run_id for e in entries)),
        "halts": sum(e.halt for e in entries),
        "max_sigma": ({q: float(np.percentile(sigmas, p)) for q, p in (("min", 0), ("median", 50), ("p90", 90),
                                                                        ("max", 100))} if sigmas.size else {}),
        "missing_files": missing, "runs": runs,
    }


def run(args) -> int:
    s = summarise(args.outdir)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{s['folder']}: {s['configurations']} flagged file(s) {s['by_kind']}, {s['halts']} halting")
    if s["max_sigma"]:
        m = s["max_sigma"]
        print(f"  max per-atom score of a file: min {m['min']:.4g}, median {m['median']:.4g}, p90 {m['p90']:.4g}, "
              f"max {m['max']:.4g}")
    for script, n in sorted(s["by_input_script"].items()):
        print(f"  {n:4d} from {script}")
    print(f"  runs: {len(s['runs'])}")
    for run_id, r in sorted(s["runs"].items()):
        mean = f"{r['mean_max_sigma']:.4g}" if r["mean_max_sigma"] is not None else "-"
        print(f"    {run_id}: {r['status']:<8s} {r['input_script']} ({r['nranks']} ranks), {r['scoring_steps']} "
              f"scoring steps, {r['flag_steps']} flagged, trajectory-mean max score {mean}")
        if r["reason"]:
            print(f"      {r['reason']}")
    if s["missing_files"]:
        print(f"  MISSING files named in the manifest: {s['missing_files']}")
        return 1
    return 0
