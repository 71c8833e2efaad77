"""Unit tests run with sockets disabled: the domain never does I/O."""

import pytest
from pytest_socket import disable_socket, enable_socket

from tests.helpers.credits_world import CreditsWorld


@pytest.fixture(autouse=True)
def _no_network():
    disable_socket()
    yield
    enable_socket()


@pytest.fixture
def world() -> CreditsWorld:
    """A user's credits on the in-memory fakes, driven through the consumption use cases."""
    return CreditsWorld()
