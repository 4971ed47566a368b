import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from costmodel.presets import load_hardware, load_model  # noqa: E402
from costmodel.specs import Model  # noqa: E402


@pytest.fixture(scope="session")
def h100():
    return load_hardware("h100-sxm")


@pytest.fixture(scope="session")
def h200():
    return load_hardware("h200-sxm")


@pytest.fixture(scope="session")
def seed():
    return load_model("seed-dense")


@pytest.fixture(scope="session")
def tiny():
    """A small model for building whole schedules quickly."""
    return Model(name="tiny", layers=2, d_model=256, n_heads=8, n_kv_heads=8, head_dim=32, d_ff=1024)
