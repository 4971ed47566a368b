"""Multi-token decode in the simulator (``--gen-tokens N``, see ``costmodel/generate.py``).

Simulates the first, middle and last of the N steps (each a one-step simulation at its context) and
interpolates the others linearly in the step index; ``all_steps=True`` simulates every step.  The step
time changes smoothly with the context, so the interpolation error is small (``tests/test_fair.py``
holds it to 0.5% of the sum over every step); the result says which steps were simulated.
"""

from __future__ import annotations

import numpy as np

from costmodel import generate
from costmodel.config import Config
from costmodel.result import Result

from .engine import SimOptions
from .run import SimRun, run_config, simulate_json


def simulate_generation(
    cfg: Config,
    options: SimOptions | None = None,
    coarsen: bool = True,
    all_steps: bool = False,
    progress=None,
) -> tuple[Result, SimRun]:
    """(the simulator's N-step Result, the run of the first step; ``progress``: ``run_config``'s)."""
    n = generate.steps(cfg)
    idx = list(range(n)) if all_steps else sorted({0, (n - 1) // 2, n - 1})
    runs = {
        i: run_config(generate.step_config(cfg, i), options, coarsen=coarsen, progress=progress) for i in idx
    }
    lat = np.array([runs[i].latency_s for i in idx])
    step_s = np.interp(np.arange(n), idx, lat)
    first = simulate_json(generate.step_config(cfg, 0), runs[0])
    how = (
        "simulator: every step simulated"
        if len(idx) == n
        else f"simulator: steps {idx} simulated, the others interpolated linearly in the step index"
    )
    ana = generate.analytic(cfg, first).latency_s if n > 1 else first.sim["analytic_latency_s"]
    res = (
        generate.extend(cfg, first, step_s, how, {"steps_simulated": idx, "analytic_total_s": ana})
        if n > 1
        else first
    )
    return res, runs[0]


__all__ = ["simulate_generation"]
