"""Image URL fetching: every SSRF refusal, redirects, size limits, and the pinned connection."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from visionloop.errors import InputInvalidUrl, InputOverLimit
from visionloop.services.fetch import ImageFetcher

PUBLIC_IP = "93.184.216.34"
BODY = b"\x89PNG\r\n\x1a\n-pretend-image-"

Handler = Callable[[httpx.Request], httpx.Response]


class FakeDNS:
    """The injected resolver: a fixed table, and a log of what was asked."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = {"images.example": [PUBLIC_IP], **(table or {})}
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


class Recorder:
    """A MockTransport handler that answers from a list and keeps every request it saw."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses) or [httpx.Response(200, content=BODY)]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses[min(len(self.requests), len(self.responses)) - 1]


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request should have been sent, got {request.url}")


def make_fetcher(
    handler: Handler = never_called,
    *,
    dns: FakeDNS | None = None,
    allow: tuple[str, ...] = (),
    max_bytes: int = 10_000,
    max_redirects: int = 2,
) -> ImageFetcher:
    return ImageFetcher(
        timeout=5.0,
        max_bytes=max_bytes,
        max_redirects=max_redirects,
        allow=allow,
        transport=httpx.MockTransport(handler),
        resolver=dns or FakeDNS(),
    )


def redirect(location: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"Location": location})


# --- success and pinning -------------------------------------------------------------------


def test_fetch_connects_to_the_checked_ip_and_keeps_the_host_header() -> None:
    handler = Recorder()
    with make_fetcher(handler) as fetcher:
        assert fetcher.fetch("http://images.example/cat.png?size=big") == BODY
    (request,) = handler.requests
    assert str(request.url) == f"http://{PUBLIC_IP}/cat.png?size=big"
    assert request.headers["host"] == "images.example"
    assert "sni_hostname" not in request.extensions


def test_https_keeps_sni_and_a_non_default_port_in_the_host_header() -> None:
    handler = Recorder()
    with make_fetcher(handler) as fetcher:
        fetcher.fetch("https://Images.Example:8443/a.jpg")
    (request,) = handler.requests
    assert (request.url.scheme, request.url.host, request.url.port) == ("https", PUBLIC_IP, 8443)
    assert request.headers["host"] == "images.example:8443"
    assert request.extensions["sni_hostname"] == "images.example"


def test_ipv6_answer_is_pinned_in_brackets() -> None:
    handler = Recorder()
    dns = FakeDNS({"v6.example": ["2606:4700::1111"]})
    with make_fetcher(handler, dns=dns) as fetcher:
        fetcher.fetch("http://v6.example/x")
    assert str(handler.requests[0].url) == "http://[2606:4700::1111]/x"
    assert handler.requests[0].headers["host"] == "v6.example"


def test_dns_rebinding_cannot_swap_the_target() -> None:
    class Rebinding(FakeDNS):
        def __call__(self, host: str, port: int) -> list[str]:
            self.asked.append((host, port))
            return [PUBLIC_IP] if len(self.asked) == 1 else ["127.0.0.1"]

    handler, dns = Recorder(), Rebinding()
    with make_fetcher(handler, dns=dns) as fetcher:
        fetcher.fetch("http://images.example/x")
    assert dns.asked == [("images.example", 80)]  # resolved once, by us
    assert handler.requests[0].url.host == PUBLIC_IP


def test_public_ip_literal_needs_no_resolution() -> None:
    dns = FakeDNS()
    with make_fetcher(Recorder(), dns=dns) as fetcher:
        assert fetcher.fetch(f"http://{PUBLIC_IP}/x") == BODY
    assert dns.asked == []


# --- malformed URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://images.example/a.png", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://images.example/", "scheme"),
        ("//images.example/a.png", "scheme"),
        ("not a url", "scheme"),
        ("http:///a.png", "no host"),
        ("http://user:secret@images.example/a.png", "user name or password"),
        ("http://images.example@evil.example/", "user name or password"),
        ("http://images.example:0/", "port"),
        ("http://images.example:99999/", "port"),
        ("http://images.example:http/", "malformed URL"),
        ("http://[::1/", "malformed URL"),
        ("http://a..b/", "malformed"),
        ("http://bad host/", "malformed"),
        ("http://2130706433/", "numeric"),
        ("http://0x7f.1/", "numeric"),
        ("http://127.1/", "numeric"),
    ],
)
def test_malformed_or_forbidden_urls_are_refused(url: str, reason: str) -> None:
    with make_fetcher() as fetcher, pytest.raises(InputInvalidUrl, match=reason):
        fetcher.fetch(url)


# --- non-public addresses ------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "192.0.0.8",
        "198.18.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:7f00:1::]",
        "[fe80::1]",
        "[fc00::1]",
        "[fec0::1]",
        "[ff02::1]",
    ],
)
def test_non_public_ip_literals_are_refused(host: str) -> None:
    with make_fetcher() as fetcher, pytest.raises(InputInvalidUrl, match="not a public address"):
        fetcher.fetch(f"http://{host}/latest/meta-data/")


@pytest.mark.parametrize(
    "answers",
    [["10.0.0.7"], ["169.254.169.254"], ["::1"], [PUBLIC_IP, "192.168.0.10"], ["::ffff:10.0.0.1"]],
)
def test_names_resolving_to_any_non_public_address_are_refused(answers: list[str]) -> None:
    dns = FakeDNS({"sneaky.example": answers})
    with make_fetcher(dns=dns) as fetcher:
        with pytest.raises(InputInvalidUrl, match="resolves to a non-public") as info:
            fetcher.fetch("http://sneaky.example/x.png")
    assert all(answer not in info.value.details for answer in answers)  # no map of the intranet


@pytest.mark.parametrize("dns", [FakeDNS(), FakeDNS({"unknown.example": []}), FakeDNS({"unknown.example": ["?"]})])
def test_unresolvable_hosts_are_refused(dns: FakeDNS) -> None:
    with make_fetcher(dns=dns) as fetcher, pytest.raises(InputInvalidUrl, match="could not resolve"):
        fetcher.fetch("http://unknown.example/x.png")


def test_default_resolver_refuses_localhost() -> None:
    fetcher = ImageFetcher(timeout=1.0, max_bytes=100, max_redirects=0, allow=(),
                           transport=httpx.MockTransport(never_called))
    with fetcher, pytest.raises(InputInvalidUrl):
        fetcher.fetch("http://localhost/")


# --- allow-list ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "url", "answers"),
    [
        (("127.0.0.1",), "http://127.0.0.1:8080/x", []),
        (("[::1]",), "http://[::1]/x", []),
        (("127.0.0.0/8",), "http://[::ffff:127.0.0.1]/x", []),
        (("localhost",), "http://localhost/x", ["127.0.0.1", "::1"]),
        (("LOCALHOST.",), "http://localhost./x", ["127.0.0.1"]),
        (("10.0.0.0/8",), "http://intranet.example/x", ["10.20.30.40"]),
    ],
)
def test_allow_list_permits_non_public_targets(allow: tuple[str, ...], url: str, answers: list[str]) -> None:
    handler = Recorder()
    dns = FakeDNS({"localhost": answers, "localhost.": answers, "intranet.example": answers})
    with make_fetcher(handler, dns=dns, allow=allow) as fetcher:
        assert fetcher.fetch(url) == BODY
    assert len(handler.requests) == 1


def test_allow_list_is_exact() -> None:
    dns = FakeDNS({"intranet.example": ["10.0.0.1", "192.168.0.1"]})
    with make_fetcher(dns=dns, allow=("10.0.0.0/8", "other.example")) as fetcher:
        with pytest.raises(InputInvalidUrl, match="non-public"):
            fetcher.fetch("http://intranet.example/x")
        with pytest.raises(InputInvalidUrl, match="not a public"):
            fetcher.fetch("http://127.0.0.1/x")


@pytest.mark.parametrize(("allow", "error"), [("127.0.0.1", TypeError), (("10.0.0.0/33",), ValueError)])
def test_bad_allow_lists_fail_at_construction(allow: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        ImageFetcher(timeout=1.0, max_bytes=1, max_redirects=0, allow=allow)  # type: ignore[arg-type]


# --- redirects -----------------------------------------------------------------------------


def test_relative_redirect_is_followed_against_the_original_host() -> None:
    handler = Recorder(redirect("/real.png", 301), httpx.Response(200, content=BODY))
    with make_fetcher(handler) as fetcher:
        assert fetcher.fetch("https://images.example/a.png") == BODY
    second = handler.requests[1]
    assert (str(second.url), second.headers["host"]) == (f"https://{PUBLIC_IP}/real.png", "images.example")
    assert second.extensions["sni_hostname"] == "images.example"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "not a public address"),
        ("http://internal.example/admin", "resolves to a non-public"),
        ("file:///etc/passwd", "scheme"),
        ("http://user:pw@images.example/", "user name"),
    ],
)
def test_redirects_are_revalidated(location: str, reason: str) -> None:
    handler = Recorder(redirect(location))
    dns = FakeDNS({"internal.example": ["10.9.8.7"]})
    with make_fetcher(handler, dns=dns) as fetcher, pytest.raises(InputInvalidUrl, match=reason):
        fetcher.fetch("http://images.example/a.png")
    assert len(handler.requests) == 1


def test_too_many_redirects() -> None:
    handler = Recorder(redirect("/again", 307))
    with make_fetcher(handler, max_redirects=2) as fetcher:
        with pytest.raises(InputInvalidUrl, match="more than 2 redirects"):
            fetcher.fetch("http://images.example/loop")
    assert len(handler.requests) == 3


def test_zero_redirects_allowed() -> None:
    with make_fetcher(Recorder(redirect("/x")), max_redirects=0) as fetcher:
        with pytest.raises(InputInvalidUrl, match="more than 0 redirects"):
            fetcher.fetch("http://images.example/")


# --- HTTP and transport failures -----------------------------------------------------------


@pytest.mark.parametrize("status", [404, 403, 500, 304])
def test_non_success_status_is_refused(status: int) -> None:
    with make_fetcher(Recorder(httpx.Response(status))) as fetcher:
        with pytest.raises(InputInvalidUrl, match=f"could not fetch image: HTTP {status}"):
            fetcher.fetch("http://images.example/missing.png")


def test_redirect_without_location_is_an_http_error() -> None:
    with make_fetcher(Recorder(httpx.Response(302))) as fetcher:
        with pytest.raises(InputInvalidUrl, match="HTTP 302"):
            fetcher.fetch("http://images.example/")


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectTimeout("slow"), "timed out"),
        (httpx.ReadTimeout("slow"), "timed out"),
        (httpx.ConnectError("[Errno 111] refused"), "connection failed"),
        (httpx.RemoteProtocolError("bad"), "transfer failed"),
    ],
)
def test_transport_errors_are_mapped_and_chained(exc: httpx.HTTPError, reason: str) -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        raise exc

    with make_fetcher(failing) as fetcher, pytest.raises(InputInvalidUrl, match=reason) as info:
        fetcher.fetch("http://images.example/a.png")
    assert info.value.__cause__ is exc
    assert "Errno" not in info.value.details


def test_error_while_streaming_the_body_is_mapped() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"abc"
        raise httpx.ReadTimeout("stalled")

    with make_fetcher(Recorder(httpx.Response(200, content=chunks()))) as fetcher:
        with pytest.raises(InputInvalidUrl, match="timed out"):
            fetcher.fetch("http://images.example/a.png")


def test_compressed_bodies_are_refused() -> None:
    response = httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=iter([b"\x1f\x8b..."]))
    with make_fetcher(Recorder(response)) as fetcher, pytest.raises(InputInvalidUrl, match="Content-Encoding"):
        fetcher.fetch("http://images.example/a.png")


# --- size limits ---------------------------------------------------------------------------


class Stream:
    """An endless body that counts how much of it was pulled."""

    def __init__(self, chunk: int = 1000) -> None:
        self.chunk = chunk
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        while True:
            self.pulled += 1
            yield b"x" * self.chunk


def test_declared_oversize_is_refused_before_reading() -> None:
    body = Stream()
    response = httpx.Response(200, headers={"Content-Length": "10001"}, content=body)
    with make_fetcher(Recorder(response)) as fetcher, pytest.raises(InputOverLimit, match="10001 bytes"):
        fetcher.fetch("http://images.example/huge.png")
    assert body.pulled == 0


@pytest.mark.parametrize("headers", [{}, {"Content-Length": "5"}])
def test_undeclared_or_lying_oversize_stops_at_the_budget(headers: dict[str, str]) -> None:
    body = Stream(chunk=1000)
    response = httpx.Response(200, headers=headers, content=body)
    with make_fetcher(Recorder(response), max_bytes=10_000) as fetcher:
        with pytest.raises(InputOverLimit, match="over the limit of 10000 bytes"):
            fetcher.fetch("http://images.example/endless.png")
    assert body.pulled == 11


def test_body_of_exactly_max_bytes_is_accepted() -> None:
    with make_fetcher(Recorder(httpx.Response(200, content=b"x" * 100)), max_bytes=100) as fetcher:
        assert len(fetcher.fetch("http://images.example/a.png")) == 100


def test_close_closes_the_shared_client() -> None:
    fetcher = make_fetcher(Recorder())
    with fetcher:
        fetcher.fetch("http://images.example/1")
        fetcher.fetch("http://images.example/2")
    assert fetcher._client.is_closed


# --- a real socket on loopback -------------------------------------------------------------


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    seen_hosts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.seen_hosts.append(self.headers["Host"])
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/img.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def loopback_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_real_loopback_server_with_allow_list(loopback_server: str) -> None:
    _ImageHandler.seen_hosts = []
    with ImageFetcher(timeout=5.0, max_bytes=10_000, max_redirects=1, allow=["127.0.0.1"]) as fetcher:
        assert fetcher.fetch(f"{loopback_server}/redirect") == BODY
    host = loopback_server.removeprefix("http://")
    assert _ImageHandler.seen_hosts == [host, host]


def test_real_loopback_server_is_refused_without_allow_list(loopback_server: str) -> None:
    _ImageHandler.seen_hosts = []
    with ImageFetcher(timeout=5.0, max_bytes=10_000, max_redirects=1, allow=[]) as fetcher:
        with pytest.raises(InputInvalidUrl, match="not a public address"):
            fetcher.fetch(f"{loopback_server}/img.png")
    assert _ImageHandler.seen_hosts == []
