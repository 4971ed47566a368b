"""The hosts' start skew of the executor's graph-decode steps, as a calibration raw file (issue 12).

    python3 benchmarks/start_skew_raw.py OUT.json RUN.jsonl [RUN.jsonl ...]

A P >= 2 step replayed from a CUDA graph starts on each GPU when that rank's host launches it; the rank
that starts first waits at the step's first collective for the last, so a step measured on the first
rank (``real.run``: CUDA events around one replay on each rank, the maximum over ranks) lasts the step
plus the spread of the hosts' starts.  ``real.run`` records that spread for every repetition
(``hosts.start_skew_us``: the last rank's host clock minus the first's at the call of the pass).  This
collects it from ``real.run`` records measured for calibration only (their own device call, shapes no
validation record uses) into records ``{"op": "start_skew", "group": ranks, "layers", "plan",
"samples_us"}``; ``validation.calibrate`` fits ``achievable.start_skew_us`` by group size (the '-graph'
profile: the executor as it runs).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from costmodel.results import atomic_write_text  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: start_skew_raw.py OUT.json RUN.jsonl [RUN.jsonl ...]", file=sys.stderr)
        return 2
    out, runs = argv[0], argv[1:]
    res, prov = [], {}
    for path in runs:
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                skew = (r.get("hosts") or {}).get("start_skew_us")
                if r.get("status") != "ok" or not skew or r.get("exec") != "graph":
                    continue
                a = r["args"]
                prov = prov or {k: r["provenance"].get(k) for k in ("gpu", "driver", "torch", "cuda", "nccl")}
                prov.setdefault("date_utc", r["provenance"].get("date_utc"))
                prov.setdefault("source_sha256", r["provenance"].get("source_sha256"))
                # the machine's boot: what tells this calibration call from a validation call near in time
                boots = set(prov.get("boot_ids", [])) | set(r["provenance"].get("boot_ids") or [])
                prov["boot_ids"] = sorted(boots)
                res.append(
                    {
                        "op": "start_skew",
                        "mode": "graph",
                        "group": int(r["world_size"]),
                        "layers": int(a[a.index("--layers") + 1]) if "--layers" in a else None,
                        "plan": a[a.index("--plan") + 1] if "--plan" in a else None,
                        "samples_us": [float(x) for x in skew],
                        "latency_samples_s": r["latency_s"]["samples"],
                        "source": os.path.basename(path),
                        "command": r["provenance"].get("command"),
                    }
                )
    if not res:
        print("no graph-decode record with hosts.start_skew_us in the runs given", file=sys.stderr)
        return 2
    atomic_write_text(
        out, json.dumps({"provenance": prov, "results": res, "suites": ["start-skew"]}, indent=1)
    )
    print(f"{len(res)} records -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
