"""Engine tests build from clipadapt's registries whatever default scope an earlier test left."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _engine_scope(clipadapt_scope):
    yield
