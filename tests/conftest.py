"""Shared test policy: a missing prerequisite skips locally but FAILS under CI."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require(condition: bool, why: str) -> None:
    """Skip the test when `condition` is false, except under CI, where that is a failure."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"prerequisite missing under CI: {why}", pytrace=False)
    pytest.skip(why)


def require_root_and_binaries(*binaries: str) -> None:
    require(os.geteuid() == 0, "needs root")
    for name in binaries:
        require(shutil.which(name) is not None, f"needs the binary {name!r} on PATH")
