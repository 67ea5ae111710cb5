"""app/http/client_disconnect.py on a server other than uvicorn, and on uvicorn's shape (the
real uvicorn is tests/live/test_request_path_live.py's)."""

from app.http.client_disconnect import probe


def test_on_a_server_other_than_uvicorn_the_client_is_taken_as_still_there():
    async def receive() -> dict:  # a plain function: no request cycle behind it
        return {"type": "http.disconnect"}

    gone = probe(receive)
    assert gone() is False


def test_on_uvicorns_shape_the_probe_follows_the_cycles_flag():
    class Cycle:  # uvicorn's RequestResponseCycle: `receive` is its bound method
        disconnected = False

        async def receive(self) -> dict:
            return {"type": "http.request"}

    cycle = Cycle()
    gone = probe(cycle.receive)
    assert gone() is False
    cycle.disconnected = True
    assert gone() is True
