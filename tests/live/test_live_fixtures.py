"""A test that uses a fixture which starts a real server is `live` without saying so."""


def test_a_test_using_a_live_fixture_is_marked_live(request, live_server):
    assert request.node.get_closest_marker("live") is not None
