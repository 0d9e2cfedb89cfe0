"""SSRF: image URLs reaching loopback, private, link-local, metadata and other non-public
addresses — as literals, as names resolving there, or behind a redirect from an allowed host —
are refused through the HTTP API and no connection is made."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import Api, ImageServer, png_bytes
from tests.security.support import GENERAL
from visionloop.core import VisionLoop
from visionloop.services.fetch import ImageFetcher


class Recording(httpx.BaseTransport):
    """The real transport, remembering every request that reached it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(str(request.url))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


NAMES = {"localhost": ["127.0.0.1"], "internal.example.com": ["10.1.2.3"], "printer.example.com": ["192.168.7.7"],
         "mixed.example.com": ["93.184.216.34", "10.9.9.9"], "metadata.example.com": ["169.254.169.254"],
         "v6loop.example.com": ["::1"], "mapped.example.com": ["::ffff:10.0.0.1"], "cgnat.example.com": ["100.64.1.1"]}


def _resolver(calls: list[str]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host in NAMES:
            return NAMES[host]
        raise OSError(f"{host}: no such name here")
    return resolve


@pytest.fixture
def guarded_fetch(core: VisionLoop) -> Iterator[tuple[Recording, list[str]]]:
    """The core's fetcher with the production rules, a resolver we control and a recording transport."""
    transport, calls = Recording(), []
    old = core.loader.fetcher
    core.loader.fetcher = ImageFetcher(timeout=5, max_bytes=core.settings.max_image_bytes, max_redirects=3,
                                       allow=core.settings.fetch_allow_hosts, transport=transport,
                                       resolver=_resolver(calls))
    yield transport, calls
    core.loader.fetcher.close()
    core.loader.fetcher = old


def _url_surfaces(url: str) -> list[tuple[str, str, dict]]:
    return [("POST", "/inputs", {"inputs": [{"data": {"image": {"url": url}}}]}),
            ("POST", f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"url": url}}}]}),
            ("POST", "/searches", {"query": {"ands": [{"output": {"input": {"data": {"image": {"url": url}}}}}]}})]


def test_image_urls_to_non_public_addresses_are_refused(api: Api, image_server: ImageServer,
                                                        guarded_fetch: tuple[Recording, list[str]]) -> None:
    transport, calls = guarded_fetch
    loopback = image_server.url("/cat.png", png_bytes())
    port = loopback.split(":")[2].split("/")[0]
    urls = [loopback, f"http://localhost:{port}/cat.png", "http://10.0.0.1/a.png", "http://172.16.5.4/a.png",
            "http://192.168.1.1/a.png", "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://[::1]/a.png", "http://[fe80::1]/a.png", "http://[fd00::1]/a.png", "http://0.0.0.0/a.png",
            "http://[::ffff:127.0.0.1]/a.png", "http://100.64.0.1/a.png", "http://2130706433/a.png",
            "http://0x7f000001/a.png", "http://127.1/a.png", "http://017700000001/a.png",
            "http://user:pw@93.184.216.34/a.png", "file:///etc/passwd", "ftp://93.184.216.34/a.png",
            "gopher://127.0.0.1:6379/_INFO"] + [f"http://{name}/a.png" for name in NAMES]
    for url in urls:
        for method, path, body in _url_surfaces(url):
            r = api.request(method, path, body)
            where = (url, path, r.text[:300])
            status = r.json()["status"]
            assert r.status_code == 400, where
            assert status["code"] in (30106, 40002), where  # INPUT_INVALID_URL (in a search: SEARCH_INVALID)
            details = status.get("details", "") + str(r.json().get("inputs", r.json().get("outputs", "")))
            for private in ("10.1.2.3", "192.168.7.7", "10.9.9.9", "169.254.169.254", "100.64.1.1"):
                if private not in url:
                    assert private not in details, where  # a name's internal address is never echoed
    assert transport.sent == [], transport.sent
    assert api.get("/inputs").json()["inputs"] == []
    assert set(NAMES) <= set(calls)


class _Redirector(http.server.ThreadingHTTPServer):
    """A loopback server answering every GET with a redirect to ``target`` (and counting the hits)."""

    def __init__(self, target: str) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                hits.append(self.path)
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.8:8080/admin",
                                    "http://internal.example.com/a.png", "http://[::1]:22/", "file:///etc/passwd"])
def test_a_redirect_from_an_allowed_host_to_a_private_address_is_refused(
        api: Api, core: VisionLoop, target: str) -> None:
    transport, calls = Recording(), []
    old = core.loader.fetcher
    core.loader.fetcher = ImageFetcher(timeout=5, max_bytes=core.settings.max_image_bytes, max_redirects=3,
                                       allow=["127.0.0.1"], transport=transport, resolver=_resolver(calls))
    redirector = _Redirector(target)
    try:
        start = f"http://127.0.0.1:{redirector.server_address[1]}/img.png"
        for method, path, body in _url_surfaces(start):
            r = api.request(method, path, body)
            assert r.status_code == 400 and r.json()["status"]["code"] in (30106, 40002), (path, r.text)
        assert len(redirector.hits) == 3  # the allowed hop was fetched, once per surface ...
        assert all(url.startswith("http://127.0.0.1:") for url in transport.sent), transport.sent  # ... nothing else
    finally:
        redirector.shutdown()
        redirector.server_close()
        core.loader.fetcher.close()
        core.loader.fetcher = old
