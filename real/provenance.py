"""Where and how a measurement was taken: devices, driver, library versions, date, command, host."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import socket
import subprocess
import sys

import torch

_ENV_KEYS = (
    "NCCL_NVLS_ENABLE",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST",
    "NVSHMEM_DISABLE_NVLS",
    "NCCL_ALGO",
    "NCCL_PROTO",
    "NCCL_P2P_LEVEL",
    "CUDA_VISIBLE_DEVICES",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING",
)


def _run(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool just leaves the field empty
        return None


def command_line() -> str:
    """The command as typed: torchrun's own command line when torchrun started this process."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = [a.decode() for a in f.read().split(b"\0") if a]
        if any("torchrun" in a or "torch.distributed.run" in a for a in parent[:3]):
            if parent and os.path.basename(parent[0]).startswith("python") and len(parent) > 1:
                parent = parent[1:]
            return " ".join(
                shlex.quote(os.path.basename(parent[0]) if i == 0 else a) for i, a in enumerate(parent)
            )
    except OSError:
        pass
    return " ".join(
        shlex.quote(a) for a in [os.path.basename(sys.executable), "-m", "real.run"] + sys.argv[1:]
    )


def git_revision() -> str | None:
    """HEAD of the checkout (with ``-dirty`` when tracked files differ from it); a copy of a working tree
    may carry a stale ``.git``, so ``source_sha256`` is the reliable name of the code."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rev = os.environ.get("RINGSIM_GIT_REV") or _run(["git", "-C", here, "rev-parse", "HEAD"])
    if (
        rev
        and "RINGSIM_GIT_REV" not in os.environ
        and _run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"])
    ):
        rev += "-dirty"
    return rev


_SOURCE_DIRS = ("costmodel", "real", "sim", "validation", "ringsim")


def source_sha256() -> str:
    """SHA-256 over the Python sources of the packages that measure and predict (path and content, in
    path order): the same code gives the same digest on any machine, with or without git."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    files = sorted(p for d in _SOURCE_DIRS for p in (root / d).rglob("*") if p.suffix in (".py", ".toml"))
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def boot_id() -> str | None:
    """The machine's boot id (Linux): a device call on a freshly started machine has its own, so records
    and calibrations that share one were measured on the same lease."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def local() -> dict:
    """This process's view (gathered over ranks by the caller)."""
    d: dict = {"hostname": socket.gethostname(), "boot_id": boot_id()}
    if torch.cuda.is_available():
        i = torch.cuda.current_device()
        p = torch.cuda.get_device_properties(i)
        d.update(
            gpu=p.name,
            gpu_memory_bytes=int(p.total_memory),
            sm_count=p.multi_processor_count,
            compute_capability=f"{p.major}.{p.minor}",
        )
    return d


def collect(per_rank: list[dict]) -> dict:
    """Provenance of one run; ``per_rank`` is ``local()`` of every rank."""
    cuda = torch.cuda.is_available()
    drv = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]) if cuda else None
    nccl = None
    if cuda:
        try:
            v = torch.cuda.nccl.version()
            nccl = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
        except Exception:  # noqa: BLE001
            nccl = None
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "hostnames": sorted({r["hostname"] for r in per_rank}),
        "boot_ids": sorted({r["boot_id"] for r in per_rank if r.get("boot_id")}),
        "gpus": [r.get("gpu") for r in per_rank],
        "gpu": per_rank[0].get("gpu"),
        "gpu_memory_bytes": per_rank[0].get("gpu_memory_bytes"),
        "sm_count": per_rank[0].get("sm_count"),
        "driver": drv.splitlines()[0] if drv else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "nccl": nccl,
        "python": platform.python_version(),
        "git_revision": git_revision(),
        "source_sha256": source_sha256(),
        "env": {k: os.environ[k] for k in _ENV_KEYS if k in os.environ},
    }
