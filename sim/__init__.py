"""sim: a discrete-event simulator (simpy) that executes a ``costmodel`` schedule on a topology.

Imports ``costmodel`` and ``simpy`` only (DESIGN.md).  ``simulate`` runs one schedule; ``run_config``
builds the schedule of a configuration (coarsening identical units where they repeat exactly, or,
after 12 units, to a stated tolerance reported in the result: ``sim/run.py``), runs it and
extrapolates (a ring of >= 128 ranks alone in its plan: timed exactly by a rank x step recurrence,
``sim/ring_recurrence.py``); ``report`` turns a run into per-rank, per-link and critical-path
summaries, a Chrome trace and plain timeline records for plots.
"""

from .engine import Engine, SimOptions, SimResult, simulate
from .report import chrome_trace, critical_path, link_stats, rank_stats, timeline_records
from .run import SimRun, run_config, simulate_json

__all__ = [
    "Engine",
    "SimOptions",
    "SimResult",
    "simulate",
    "chrome_trace",
    "critical_path",
    "link_stats",
    "rank_stats",
    "timeline_records",
    "SimRun",
    "run_config",
    "simulate_json",
]
