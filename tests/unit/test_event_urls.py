"""Which URLs may receive events: public http(s) addresses only, checked at each delivery.

Nothing here opens a connection: addresses are classified, and names are resolved by a fake
resolver (or, for `localhost`, by /etc/hosts), so no packet leaves the machine.
"""

import asyncio
import ipaddress
import socket
import threading
import time

import pytest

from app.events import url_safety

REFUSED = [
    "127.0.0.1",
    "127.9.9.9",
    "::1",
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT (and Alibaba's metadata at 100.100.100.200)
    "169.254.169.254",  # the cloud metadata address
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS's IPv6 metadata address
    "224.0.0.1",
    "233.252.0.1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "240.0.0.1",
    "255.255.255.255",
    "198.18.0.1",
]
PUBLIC = ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str):
    assert url_safety.refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str):
    assert url_safety.refusal(ipaddress.ip_address(address)) is None


def fake_resolver(answers: dict[str, list[str]]) -> url_safety.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("name does not resolve")
        return answers[host]

    return resolve


def check(url: str, answers: dict[str, list[str]], **options: bool) -> url_safety.Target:
    return asyncio.run(url_safety.check(url, resolver=fake_resolver(answers), **options))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example/x",
        "file:///etc/passwd",
        "gopher://hooks.example/",
        "hooks.example/x",
        "http:///no-host",
        "https://user:pass@hooks.example/x",
        "https://hooks.example:99999/x",
        "https://hooks.example/a b",
        "https://hooks.example/\x00",
        "https://hooks.example/" + "x" * 2048,
    ],
)
def test_malformed_or_non_http_urls_are_refused(url: str):
    with pytest.raises(url_safety.UrlNotAllowed):
        check(url, {"hooks.example": ["93.184.215.14"]})


def test_a_public_name_is_accepted_and_pinned_to_its_checked_address():
    target = check("https://hooks.example:8443/in?x=1", {"hooks.example": ["93.184.215.14"]})

    assert target.address == "93.184.215.14"
    assert target.request_url() == "https://93.184.215.14:8443/in?x=1"
    assert target.host_header() == "hooks.example:8443"


def test_ipv6_addresses_are_bracketed_in_the_request_url():
    target = check(
        "http://[2606:4700:4700::1111]/in", {"2606:4700:4700::1111": ["2606:4700:4700::1111"]}
    )

    assert target.request_url() == "http://[2606:4700:4700::1111]/in"


def test_a_name_with_one_private_answer_among_public_ones_is_refused():
    with pytest.raises(url_safety.UrlNotAllowed, match="10.1.2.3"):
        check("https://hooks.example/", {"hooks.example": ["93.184.215.14", "10.1.2.3"]})


def test_a_name_rebound_to_a_private_address_is_refused_at_the_next_check():
    answers = {"hooks.example": ["93.184.215.14"]}
    check("https://hooks.example/", answers)
    answers["hooks.example"] = ["169.254.169.254"]

    with pytest.raises(url_safety.UrlNotAllowed, match="169.254.169.254"):
        check("https://hooks.example/", answers)


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(url_safety.UrlNotAllowed, match="does not resolve"):
        check("https://nowhere.example/", {})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://0.0.0.0:9/",
        "http://2130706433:9/",  # 127.0.0.1 as one number
        "http://0x7f.1:9/",
        "http://10.0.0.1:9/",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_loopback_and_private_forms_are_refused_by_the_system_resolver(url: str):
    # These resolve locally (literals, /etc/hosts): no DNS query leaves the machine.
    with pytest.raises(url_safety.UrlNotAllowed):
        asyncio.run(url_safety.check(url))


def test_private_addresses_pass_when_allowed():
    target = asyncio.run(url_safety.check("http://127.0.0.1:9/in", allow_private=True))

    assert target.address == "127.0.0.1"


def test_an_internationalised_host_is_sent_in_its_idna_form():
    target = check("https://B\u00fccher.example:8443/in", {"xn--bcher-kva.example": ["1.1.1.1"]})

    assert target.host == "xn--bcher-kva.example"
    assert target.host_header() == "xn--bcher-kva.example:8443"
    assert target.request_url() == "https://1.1.1.1:8443/in"


@pytest.mark.parametrize("host", ["\u2603.example", "a\u200d.example", "b\u00fccher\u2029.example"])
def test_a_host_with_no_valid_idna_form_is_refused_before_any_lookup(host: str):
    with pytest.raises(url_safety.UrlNotAllowed, match="not a valid domain name"):
        check(f"https://{host}/", {})


def test_names_whose_dns_never_answers_do_not_hold_up_other_lookups(
    monkeypatch: pytest.MonkeyPatch,
):
    """Forty names whose look-up hangs (more threads than a shared pool has), then `localhost`
    from /etc/hosts: it resolves at once. The hanging names are never sent to the system
    resolver: the patched getaddrinfo blocks on them until the test ends."""
    real_getaddrinfo, released = socket.getaddrinfo, threading.Event()
    calls: list[str] = []

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> object:
        calls.append(host)
        if host.endswith(".hangs.test"):
            released.wait(30)
            raise socket.gaierror("no answer")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(url_safety, "RESOLVE_TIMEOUT_SECONDS", 0.3)

    async def run() -> tuple[list[object], object]:
        hanging = [f"http://n{n % 20}.hangs.test/" for n in range(40)]  # each name twice
        stuck = await asyncio.gather(
            *(url_safety.check(url) for url in hanging), return_exceptions=True
        )
        started = time.monotonic()
        target = await url_safety.check("http://localhost:9/", allow_private=True)
        return stuck, (target, time.monotonic() - started)

    try:
        stuck, (target, _) = asyncio.run(run())
        assert all(isinstance(error, url_safety.UrlNotAllowed) for error in stuck)
        assert target.address in {"127.0.0.1", "::1"}
        # A name being looked up is not looked up again by a second caller.
        assert sum(1 for host in calls if host.endswith(".hangs.test")) == 20
    finally:
        released.set()
