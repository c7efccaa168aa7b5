"""Fixtures shared by the scenario modules: one lab per module, and monha on both nodes
(`monha` gives the standby's; `both`, defined in support.py, gives both by name).

A module that needs a different lab (another config, a second daemon) defines its own
fixture of the same name, which takes precedence over these.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monha.lab.drive import Monha, wait_for
from monha.lab.lab import Lab
from tests.lab.support import lab_for_module
from tests.scenarios.support import both

__all__ = ["both", "lab", "monha"]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_for_module()


@pytest.fixture(scope="module")
def monha(lab: Lab) -> Iterator[Monha]:
    """monha on node2, the standby, once it has judged the primary healthy; and monha on
    node1 as well, as on a real pair (its daemon's log is kept beside node2's). The tests
    drive and read node2's; node1's must make nothing worse."""
    peer = Monha.start(lab, "node1")
    try:
        m = Monha.start(lab)
        wait_for("a healthy decision", lambda: m.status()["state"] == "healthy", 15)
        yield m
        m.stop()
    finally:
        peer.stop()
