"""Compare two ``ringsim explore`` output folders (an old build's and a new one's): every data file byte for
byte (``data/explore.npz`` also member by member, the same dtype, shape and bits), EXPLORE.md with its
runtime line ("... points in N.N s ...") masked, figures by name only (their drawing is plots.explore's).
Exit 0 where they are the same, 1 with the differences listed.

    python benchmarks/compare_explore_dirs.py OLD_DIR NEW_DIR
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import numpy as np

RUNTIME = re.compile(r"points in [0-9.]+ s")


def _npz_members(p: Path) -> dict[str, np.ndarray]:
    with np.load(p, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def compare(old: Path, new: Path) -> list[str]:
    bad = []
    files = lambda d: sorted(  # noqa: E731
        str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    fo, fn = files(old), files(new)
    if fo != fn:
        bad.append(
            f"file lists differ: only old {sorted(set(fo) - set(fn))}, only new {sorted(set(fn) - set(fo))}"
        )
    for rel in sorted(set(fo) & set(fn)):
        a, b = old / rel, new / rel
        if rel.startswith("figures/"):
            continue
        if rel == "EXPLORE.md":
            ta, tb = (RUNTIME.sub("points in ? s", x.read_text()) for x in (a, b))
            if ta != tb:
                bad.append(f"{rel}: differs beyond its runtime line")
            continue
        if rel.endswith(".npz"):
            ma, mb = _npz_members(a), _npz_members(b)
            if list(ma) != list(mb):
                bad.append(f"{rel}: members differ")
            for k in set(ma) & set(mb):
                x, y = ma[k], mb[k]
                same = x.dtype == y.dtype and x.shape == y.shape
                if same and x.dtype.kind == "f":
                    same = np.array_equal(x.view(np.uint8), y.view(np.uint8))
                elif same:
                    same = np.array_equal(x, y)
                if not same:
                    bad.append(f"{rel}: member {k} differs ({x.dtype}{x.shape} vs {y.dtype}{y.shape})")
            with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
                if [i.filename for i in za.infolist()] != [i.filename for i in zb.infolist()]:
                    bad.append(f"{rel}: member order differs")
        if a.read_bytes() != b.read_bytes():
            bad.append(f"{rel}: bytes differ")
    return bad


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    bad = compare(Path(argv[0]), Path(argv[1]))
    for line in bad:
        print(line)
    print("same" if not bad else f"{len(bad)} difference(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
