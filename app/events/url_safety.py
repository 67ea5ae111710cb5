"""Where the service may send events: public http(s) addresses only.

A subscription URL is checked when it is created and again before every delivery, against the
addresses its host resolves to then: a name that pointed at a public address at creation and at
10.0.0.5 or 169.254.169.254 later (DNS rebinding) is refused at delivery. The delivery connects
to the very address that passed the check (`Target.address`), never to a second lookup's answer.

A host name is looked up by `ThreadResolver`: each look-up on a thread of its own, given up
after RESOLVE_TIMEOUT_SECONDS, and one look-up at a time per name, so names whose DNS never
answers cannot take the threads every other look-up needs (a shared pool would keep running
their calls past the timeout). An IP literal is not looked up at all. An internationalised
host name is sent as its IDNA (punycode) form, in the connection's Host header and TLS SNI.
"""

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import idna

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}
RESOLVE_TIMEOUT_SECONDS = 5.0
# Look-ups running at once (names whose DNS never answers hold theirs until the OS gives up).
MAX_LOOKUP_THREADS = 64
# NAT64 maps IPv4 into this IPv6 prefix: 64:ff9b::7f00:1 reaches 127.0.0.1 through a gateway.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# Why a URL may not receive events; the message is safe to show to the subscriber.
class UrlNotAllowed(Exception):
    pass


# A URL that passed the check, and the one address a delivery connects to; `host` is the
# ASCII (IDNA) form of the URL's host, as the Host header and TLS SNI carry it.
@dataclass(frozen=True)
class Target:
    url: str
    host: str
    address: str

    def request_url(self) -> str:
        """The URL with its host replaced by the checked address (the Host header keeps it)."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        return parts._replace(netloc=netloc).geturl()

    def host_header(self) -> str:
        port = urlsplit(self.url).port
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if port is None else f"{host}:{port}"


def refusal(address: IpAddress) -> str | None:
    """Why an address is not public (None when it is); IPv4 carried inside IPv6 included."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (reason := refusal(embedded)):
            return reason
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local (cloud metadata lives here)", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return name
    return None if address.is_global else "not globally routable"


def parse(url: str) -> SplitResult:
    """The URL's parts, or UrlNotAllowed when it is not an absolute http(s) URL."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise UrlNotAllowed("The URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise UrlNotAllowed(f"The URL cannot be parsed: {error}.") from None
    if parts.scheme not in SCHEMES:
        raise UrlNotAllowed("Only http and https URLs may receive events.")
    if not parts.hostname:
        raise UrlNotAllowed("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UrlNotAllowed(
            "Credentials in the URL are not supported: receivers verify the signature instead."
        )
    return parts


def ascii_host(host: str) -> str:
    """The host as DNS and HTTP carry it: an internationalised name in its IDNA 2008 (UTS 46)
    form, `bücher.example` → `xn--bcher-kva.example`; UrlNotAllowed when it has none."""
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise UrlNotAllowed(f"The host {host!r} is not a valid domain name: {error}.") from None


def _literal(host: str) -> str | None:
    """The address when `host` is an IP literal (nothing to look up), else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


class ThreadResolver:
    """The system resolver (getaddrinfo) on threads of its own, one per name being looked up.

    A caller waiting for a name already being looked up waits for that look-up instead of
    starting another, so a name whose DNS never answers holds one thread however often it is
    asked for. At most MAX_LOOKUP_THREADS names are looked up at once; past that a look-up is
    refused at once (OSError) rather than queued behind the stuck ones.
    """

    def __init__(self, getaddrinfo: Callable[..., Any] | None = None) -> None:
        self._getaddrinfo = getaddrinfo
        self._lock = threading.Lock()
        self._running: dict[tuple[str, int], list[asyncio.Future[list[str]]]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[str]] = loop.create_future()
        key = (host, port)
        with self._lock:
            waiting = self._running.get(key)
            if waiting is None:
                if len(self._running) >= MAX_LOOKUP_THREADS:
                    raise OSError("too many host names are being looked up")
                self._running[key] = [future]
                threading.Thread(target=self._look_up, args=(key,), name="dns", daemon=True).start()
            else:
                waiting.append(future)
        # A caller that gives up (its timeout) leaves the look-up running for the others.
        return await asyncio.shield(future)

    def _look_up(self, key: tuple[str, int]) -> None:
        answer: list[str] | BaseException
        try:
            getaddrinfo = self._getaddrinfo or socket.getaddrinfo
            infos = getaddrinfo(*key, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
            answer = list(dict.fromkeys(str(info[4][0]) for info in infos))
        except BaseException as error:  # handed to the waiting callers
            answer = error
        with self._lock:
            waiting = self._running.pop(key)
        for future in waiting:
            try:
                future.get_loop().call_soon_threadsafe(_settle, future, answer)
            except RuntimeError:  # its loop has closed: nobody waits any more
                pass


def _settle(future: "asyncio.Future[list[str]]", answer: list[str] | BaseException) -> None:
    if future.done():
        return
    if isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)


system_resolver: Resolver = ThreadResolver()


async def check(
    url: str, *, allow_private: bool = False, resolver: Resolver | None = None
) -> Target:
    """The delivery target of `url`, or UrlNotAllowed.

    Every address the host resolves to must be public: a name with one private answer among
    public ones is refused, since the connection could be steered to it. With `allow_private`
    (EVENT_ALLOW_PRIVATE_URLS, for development and tests) any address is accepted.
    """
    parts = parse(url)
    host = ascii_host(parts.hostname or "")
    port = parts.port or SCHEMES[parts.scheme]
    literal = _literal(host)
    try:
        if literal is not None:
            answers = [literal]
        else:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                answers = await (resolver or system_resolver)(host, port)
    except (OSError, TimeoutError, UnicodeError):
        raise UrlNotAllowed(f"The host {host!r} does not resolve.") from None
    if not answers:
        raise UrlNotAllowed(f"The host {host!r} does not resolve.")
    if not allow_private:
        for answer in answers:
            reason = refusal(ipaddress.ip_address(answer.split("%")[0]))
            if reason is not None:
                raise UrlNotAllowed(
                    f"The host {host!r} resolves to {answer}, a {reason} address: "
                    "events are sent to public addresses only."
                )
    return Target(url=url, host=host, address=answers[0])
