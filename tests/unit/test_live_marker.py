"""The `live` marker is true: `-m "not live"` leaves out every test that starts a server."""

import pytest

from tests.live_server import LiveServer


def test_a_test_without_the_live_marker_cannot_start_a_server():
    server = LiveServer(None, migrate=False)
    with pytest.raises(RuntimeError, match="mark it @pytest.mark.live"):
        server.start()
    assert server.process is None


def test_a_test_using_a_live_fixture_is_marked_live(request, live_server):
    assert request.node.get_closest_marker("live") is not None
