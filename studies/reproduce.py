"""``ringsim reproduce``: the seed-claims page (the seed configuration's predictions, ceilings and the
verdict table) plus the seed's experiment file (``studies/experiments/seed.toml``) run through ``explore``
(winner and speed-up maps, the memory-aware crossover), the seed's question asked for real models
(``QUESTIONS``: Llama 3.1 70B and 405B at 128Ki-1Mi on H100 over InfiniBand and on GB200 NVL72), a
simulated layer and (when present) measurements -> REPORT.md.

Order matters: every results file is written first, then its figure is drawn *from the file*
(``plot_file``), so ``ringsim plot data/FILE`` re-makes any figure exactly."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from costmodel import presets
from costmodel.errors import SpecError
from costmodel.results import atomic_write_text, ensure_dir, signals_deferred, write_json, write_sweep_files
from costmodel.sweep import check_points, lcm_multiple, parse_template, run_sweep, seq_grid
from costmodel.units import MAX_COUNT
from plots import report
from plots.files import plot_file
from plots.validation import load_validation
from validation.stored import measurement_files, package_relative

from .claims import claims_table
from .explore import (
    EXPERIMENTS_DIR,
    load_experiment_file,
    make_experiment,
    report_section,
    verdict_legend,
    write_explore,
)
from .seed import ceilings, load_claims, make_config, predictions

SEED_EXPERIMENT = EXPERIMENTS_DIR / "seed.toml"
# the seed's question for real models (REPORT.md, "The seed's question for Llama 3.1"), one file each
QUESTIONS = tuple(
    EXPERIMENTS_DIR / f
    for f in (
        "llama3-70b-h100-ib.toml",
        "llama3-405b-h100.toml",
        "llama3-70b-gb200-nvl72.toml",
        "llama3-405b-gb200-nvl72.toml",
    )
)


def seed_experiment(path=None, *, points=None, gpus=None, topologies=None, phases=None, batch=None):
    """The seed's experiment file with the given values laid over it (validated before any work)."""
    raw = load_experiment_file(path or SEED_EXPERIMENT)
    over = {"points": points, "gpus": gpus, "topology": topologies, "phase": phases, "batch": batch}
    raw.update(
        {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in over.items() if v is not None}
    )
    return make_experiment(raw, source=str(path or SEED_EXPERIMENT))


SWEEP_GPUS = (8, 16, 32, 64)
SWEEP_SEQ = (4 * 1024, 1024 * 1024)


def sweep_templates(batch: int) -> list[str]:
    """ring across all P; the seed's baseline shape tp=8 x pp=P/8 with one sequence per micro-batch;
    the hybrid tp=8 inside a node x ring across nodes."""
    return ["ring=P", f"tp=8,pp=P/8,mb={batch}", "tp=8,ring=P/8"]


def write_sweep(
    out_dir: Path,
    *,
    hardware: str,
    model_name: str,
    topo_kind: str,
    phase: str,
    batch: int,
    points: int,
    gpus=SWEEP_GPUS,
    seq=SWEEP_SEQ,
) -> Path:
    """One sweep written exactly as ``ringsim sweep`` writes it (npz + CSV + JSON manifest); returns the
    CSV."""
    plans = sweep_templates(batch)
    templates = [parse_template(t) for t in plans]
    hw, model = presets.load_hardware(hardware), presets.load_model(model_name)
    mult = lcm_multiple(templates, list(gpus), "zigzag")
    seqs = seq_grid(seq[0], seq[1], points, mult)
    cols, skipped = run_sweep(
        model,
        hw,
        topo_kind=topo_kind,
        phase=phase,
        causal=True,
        kernel="flash",
        ring_variant="zigzag",
        decode_attn="allgather",
        batch=batch,
        seqs=seqs,
        gpus=list(gpus),
        templates=templates,
    )
    specs = {
        "kind": "sweep",
        "engine": "analytic",
        "hardware": hw.name,
        "hardware_provenance": dict(hw.provenance),
        "model": model.name,
        "model_fields": {
            k: getattr(model, k) for k in ("layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff")
        },
        "topology": topo_kind,
        "phase": phase,
        "causal": True,
        "batch": batch,
        "ring_variant": "zigzag",
        "decode_attn": "allgather",
        "attn_kernel": "flash",
        "gpus": list(gpus),
        "plans": plans,
        "seq_range": list(seq),
        "seq_multiple": mult,
    }
    stem = f"sweep_{topo_kind}_{phase}"
    write_sweep_files(out_dir, cols, specs, skipped, stem=stem)
    return out_dir / f"{stem}.csv"


def simulated_timelines(setup: dict, data: Path) -> tuple[Path | None, str]:
    """One layer of both seed plans through the simulator, when ``sim`` is importable."""
    try:
        from sim import simulate, timeline_records  # the simulator's API (issue 3)
    except ImportError as e:
        return None, (
            f"the simulator is not importable here ({e}); `ringsim plot` draws any timeline file "
            "{'specs', 'timeline': [{rank, stream, kind, tag, start_s, end_s}]} "
            "once sim/ writes one"
        )
    from costmodel.build import build_schedule

    items = []
    for _label, plan in (("ring", setup["ring_plan"]), ("baseline", setup["baseline_plan"])):
        cfg = make_config(
            hardware=setup["hardware"],
            topology=setup["topologies"][0],
            model=setup["model"],
            batch=setup["batch"],
            seq=setup["seq"],
            phase="prefill",
            plan=plan,
        )
        sched = build_schedule(
            cfg.model, cfg.workload, cfg.plan, cfg.topology, cfg.hardware, kernel=cfg.kernel, layers=1
        )
        res = simulate(sched, cfg.topology, cfg.hardware)
        items.append(
            {
                "label": f"{cfg.plan.label(cfg.workload.phase, cfg.kernel)} on {cfg.topology.spec}, "
                "one layer per stage, prefill",
                "specs": {**cfg.specs(), "engine": "sim", "layers_built": sched.layers_built},
                "latency_s": res.latency_s,
                "timeline": timeline_records(res),
            }
        )
    path = data / "timeline_seed_one_layer.json"
    write_json(path, {"kind": "timelines", "timelines": items})
    return path, ""


def validation_records(data: Path) -> tuple[Path | None, str]:
    """The committed measurements beside both engines' predictions (``validation.compare``, the same rows
    as ``ringsim validate``), written as a results file the scatter is drawn from."""
    src = measurement_files()
    if not src:
        return None, "no measurements yet: validation/data/*.jsonl does not exist (issue 5 commits it)"
    recs = load_validation(src)  # records that already carry predictions
    summary = None
    if not recs:
        from validation.compare import compare, summarise  # costmodel + sim: no torch

        rows = compare([str(p) for p in src])
        recs = [r.as_dict() for r in rows]
        summary = summarise(rows)
    if not recs:
        return None, f"{len(src)} file(s) in validation/data/ but no measured record in them"
    path = data / "validation_records.json"
    write_json(
        path,
        {
            "kind": "validation",
            "sources": [package_relative(p) for p in src],
            "records": recs,
            "summary": summary,
        },
    )
    return path, ""


def reproduce(
    out: str | Path,
    *,
    claims_path=None,
    experiment=None,
    sweep_batch: int | None = None,
    points: int | None = None,
    command: str = "ringsim reproduce",
    log=print,
    gpus=None,
    topologies=None,
    phases=None,
    questions=QUESTIONS,
    timeline: bool = True,
    progress=None,
    version: str = "",
) -> dict:
    if sweep_batch is not None and not 1 <= sweep_batch <= MAX_COUNT:
        raise SpecError(f"--sweep-batch {sweep_batch} is not valid: an integer from 1 to 2**50 (sequences)")
    if points is not None:
        check_points(points, least=2)
    final = Path(out)
    if final.exists() and not final.is_dir():
        raise SpecError(f"--out {str(out)!r} is a file: name a folder")
    parent = ensure_dir(final.resolve().parent, "--out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError(f"--out {str(out)!r} cannot be written: its folder {str(parent)!r} is not writable")
    # every experiment is validated before any work
    exp = seed_experiment(
        experiment,
        points=points,
        gpus=gpus,
        topologies=topologies,
        phases=phases,
        batch=[sweep_batch] if sweep_batch else None,
    )
    qs = [(Path(q).stem, make_experiment(load_experiment_file(q), source=str(q))) for q in questions]
    # written as a unit: into a temporary sibling folder, renamed into place at the end (an interrupted or
    # failed run leaves the previous results as they were, and nothing half-new)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise SpecError(
            f"--out {str(out)!r} cannot be written: its folder {str(parent)!r} refuses a new folder "
            f"({e.strerror or e})"
        ) from None
    try:
        result = _reproduce(
            work,
            claims_path=claims_path,
            exp=exp,
            questions=qs,
            command=command,
            log=log,
            timeline=timeline,
            progress=progress,
            version=version,
        )
        old = None
        with signals_deferred():  # the swap: an interruption lands before or after it, not inside
            if final.exists():
                old = final.with_name(f".{final.name}.old-{os.getpid()}")
                final.rename(old)
            work.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result["report"] = final / "REPORT.md"
    log(f"wrote {result['report']}")
    return result


def _explore_into(folder: Path, exp, *, out: Path, version, progress, log) -> dict:
    """``explore`` of one experiment into ``folder`` (inside the report's folder); paths relative to out."""
    cmd = f"ringsim explore {Path(exp.source).name}" if exp.source else "ringsim explore"
    r = write_explore(
        ensure_dir(folder, "--out"), exp, version=version, command=cmd, progress=progress, log=log
    )
    rel = os.path.relpath(folder, out).replace(os.sep, "/")
    r["folder"] = rel
    r["figures"] = [f"{rel}/{f}" for f in r["figures"]]
    r["title"] = exp.title
    return r


def _reproduce(out: Path, *, claims_path, exp, questions, command, log, timeline, progress, version) -> dict:
    t0 = time.perf_counter()
    data, figs = ensure_dir(out / "data", "--out"), ensure_dir(out / "figures", "--out")
    claims = load_claims(claims_path)
    setup = claims["setup"]
    preds, ceil = predictions(setup), ceilings(setup)
    doc = {
        "specs": {
            "kind": "seed-report",
            **setup,
            "claims_source": claims["source"],
            "method_source": claims["method_source"],
            "assumptions": claims["assumptions"],
        },
        "ceilings": ceil,
        "predictions": preds,
        "claims": claims_table(claims, preds, ceil),
    }
    seed_file = write_json(data / "seed_report.json", doc)
    rel = lambda p: os.path.relpath(p, out).replace(os.sep, "/")  # noqa: E731
    figures = {"claims": rel(plot_file(seed_file, figs)[0])}
    log(f"seed report: {len(preds)} predictions, {len(doc['claims'])} claims -> {rel(seed_file)}")
    seed_explore = _explore_into(out / "explore", exp, out=out, version=version, progress=progress, log=log)
    log(f"seed experiment: {seed_explore['points']} points -> {seed_explore['folder']}/EXPLORE.md")
    asked = []
    for stem, q in questions:
        asked.append(
            _explore_into(out / "questions" / stem, q, out=out, version=version, progress=progress, log=log)
        )
        log(f"question {stem}: {asked[-1]['points']} points -> {asked[-1]['folder']}/EXPLORE.md")
    skipped = {}
    no_tl = lambda: (None, "not requested")  # noqa: E731
    steps = (
        ("timeline", (lambda: simulated_timelines(setup, data)) if timeline else no_tl),
        ("validation", lambda: validation_records(data)),
    )
    for key, fn in steps:
        path, why = fn()
        if path is None:
            skipped[key] = why
            log(f"{key}: skipped: {why}")
        else:
            figures[key] = rel(plot_file(path, figs)[0])
    runtime = time.perf_counter() - t0
    vfile = data / "validation_records.json"
    have_v = "validation" in figures and vfile.exists()
    vsum = json.loads(vfile.read_text()).get("summary") if have_v else None
    md = report.render(
        doc,
        explore_md=report_section(seed_explore, level=3),
        questions_md=[report_section(q, level=3) for q in asked],
        verdicts_md=verdict_legend(),
        figures=figures,
        skipped=skipped,
        runtime_s=runtime,
        command=command,
        validation_summary=vsum,
    )
    atomic_write_text(out / "REPORT.md", md)
    log(f"REPORT.md in {runtime:.1f} s")
    return {
        "report": out / "REPORT.md",
        "doc": doc,
        "figures": figures,
        "skipped": skipped,
        "runtime_s": runtime,
        "explore": seed_explore,
        "questions": asked,
        "crossover": seed_explore["crossover"],
    }
