"""Fixtures shared by actcore's tests."""

import pytest


@pytest.fixture
def learnable_operator():
    """A plugin operator ``scaled`` with a learnable module, registered for one test."""
    from torch import nn

    from actcore import Operator, hookimpl, plugins

    class Learnable:
        @hookimpl
        def act_operators(self):
            return [Operator("scaled", 1, module=lambda args: nn.Sequential(*args))]

    plugins.register(Learnable(), name="learnable-operator-fixture")
    yield "scaled"
    plugins.unregister("learnable-operator-fixture")
