"""Engine tests build from clipadapt's registries whatever default scope an earlier test left."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def clipadapt_scope():
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("clipadapt"):
        yield
