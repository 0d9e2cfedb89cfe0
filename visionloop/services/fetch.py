"""Fetch image URLs for clients without letting them make us reach private networks (SSRF).

Each hop — the URL given and every redirect — is parsed strictly, its host resolved once and
*all* of its addresses checked. The request then goes to the very address that was checked,
with the original ``Host`` header and TLS SNI/certificate name, so a second DNS answer cannot
swap the target (DNS rebinding). Bodies are streamed against a byte budget, so neither a missing
nor a lying ``Content-Length`` can make us hold more than ``max_bytes``.

Every failure is an :class:`~visionloop.errors.InputInvalidUrl` (or ``InputOverLimit`` for size)
whose details name the reason; transport exceptions are chained, never shown to the client. A URL
refused by this policy, at any hop, before anything is requested from it is an ``InputUrlRefused``:
a request error, where the others are failed downloads (which ``POST /v2/inputs`` stores).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

import httpx

from visionloop.errors import InputInvalidUrl, InputOverLimit, InputUrlRefused

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = ("http", "https")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
# WHATWG URL parsing reads a host whose last label is a number as IPv4 ("2130706433", "0x7f.1");
# libc does too. Such hosts are refused rather than guessed at.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Non-routable ranges that this Python's ``is_global`` still calls global (bpo-26027 and kin).
_ALSO_FORBIDDEN: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n) for n in ("100.64.0.0/10", "192.0.0.0/24", "192.88.99.0/24", "fec0::/10")
)


def resolve(host: str, port: int) -> list[str]:
    """The default resolver: every address ``getaddrinfo`` knows for ``host``, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses; IPv4 inside IPv6 is judged as IPv4."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_public_address(embedded)
    return (
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not any(ip in net for net in _ALSO_FORBIDDEN)
    )


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), so it gets the same check."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


class _AllowList:
    """Hosts and networks an operator lets image URLs reach although they are not public."""

    def __init__(self, entries: Sequence[str]) -> None:
        if isinstance(entries, str):
            raise TypeError("allow must be a sequence of hosts or CIDR ranges, not one string")
        self.hosts: set[str] = set()
        self.networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().strip("[]").rstrip(".")
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if not all(_LABEL.fullmatch(label) for label in entry.split(".")):
                    raise ValueError(f"allow entry {raw!r} is neither a host name nor a CIDR range") from None
                self.hosts.add(entry)

    def permits_host(self, host: str) -> bool:
        return host.rstrip(".") in self.hosts

    def permits_address(self, ip: IPAddress) -> bool:
        candidates = [ip] + [e for e in [_embedded_ipv4(ip)] if e is not None]
        return any(c in net for c in candidates for net in self.networks)


class ImageFetcher:
    """Downloads image URLs SSRF-safely; one reused ``httpx.Client``, so build once and ``close()``."""

    def __init__(
        self,
        timeout: float,
        max_bytes: int,
        max_redirects: int,
        allow: Sequence[str] = (),
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        if timeout <= 0 or max_bytes <= 0 or max_redirects < 0:
            raise ValueError("timeout and max_bytes must be positive and max_redirects not negative")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._allow = _AllowList(allow)
        self._resolve = resolver or resolve
        # trust_env=False: an environment proxy would connect on our behalf and void the pinning.
        # No keep-alive: httpcore pools connections by IP, so a TLS connection verified for one
        # host name could be reused for another name on the same IP without checking its cert.
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
            follow_redirects=False,
            trust_env=False,
            headers={"Accept": "image/*", "Accept-Encoding": "identity", "User-Agent": "visionloop-fetch/1"},
        )

    def fetch(self, url: str) -> bytes:
        """The body of ``url`` after at most ``max_redirects`` redirects, each hop re-validated."""
        deadline = time.monotonic() + self.timeout
        current = self._parse(url)
        for _ in range(self.max_redirects + 1):
            request = self._pinned_request(current)
            with _mapped_transport_errors():
                response = self._client.send(request, stream=True)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECTS and location:
                        current = self._parse(_join(current, location))
                        continue
                    if not response.is_success:
                        raise InputInvalidUrl(f"could not fetch image: HTTP {response.status_code}")
                    return self._read_body(response, deadline)
                finally:
                    response.close()
        raise InputInvalidUrl(f"could not fetch image: more than {self.max_redirects} redirects")

    def post(self, url: str, content: bytes, headers: dict[str, str]) -> int:
        """POST ``content`` to ``url`` under the same checks as a fetch (a webhook: the alarm check
        sends to an operator's URL); the response's status. Redirects are not followed."""
        request = self._pinned_request(self._parse(url), method="POST", content=content, headers=headers)
        with _mapped_transport_errors():
            response = self._client.send(request)
            response.close()
            return response.status_code

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ImageFetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _parse(self, raw: str | httpx.URL) -> httpx.URL:
        """A URL we are willing to request: http(s), a well-formed host, no credentials, a real port."""
        try:
            url = httpx.URL(raw)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise InputUrlRefused(f"malformed URL: {exc}") from exc
        if url.scheme not in _SCHEMES:
            raise InputUrlRefused(f"URL scheme must be http or https, not {url.scheme!r}")
        if url.userinfo:
            raise InputUrlRefused("URL must not contain a user name or password")
        if not url.raw_host:
            raise InputUrlRefused("URL has no host")
        if url.port is not None and not 0 < url.port < 65536:
            raise InputUrlRefused(f"URL port {url.port} is out of range")
        host = url.raw_host.decode("ascii").lower()
        if not _is_ip_literal(host):
            labels = host.rstrip(".").split(".")
            if not all(_LABEL.fullmatch(label) for label in labels):
                raise InputUrlRefused(f"URL host {host!r} is malformed")
            if _NUMERIC_LABEL.fullmatch(labels[-1]):
                raise InputUrlRefused(f"URL host {host!r} is an ambiguous numeric address")
        return url

    def _pinned_request(self, url: httpx.URL, method: str = "GET", content: bytes | None = None,
                        headers: dict[str, str] | None = None) -> httpx.Request:
        """A request aimed at a checked address of ``url``'s host, still naming the host itself."""
        host = url.raw_host.decode("ascii").lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        address = self._checked_address(host, port)
        extensions: dict[str, object] = {}
        if url.scheme == "https" and not _is_ip_literal(host):
            extensions["sni_hostname"] = host.rstrip(".")
        try:
            pinned = url.copy_with(host=str(address))
        except httpx.InvalidURL as exc:
            raise InputUrlRefused(f"cannot connect to {host!r}") from exc
        headers = {**(headers or {}), "Host": url.netloc.decode("ascii")}
        return self._client.build_request(method, pinned, headers=headers, content=content, extensions=extensions)

    def _checked_address(self, host: str, port: int) -> IPAddress:
        """The address to connect to, after checking every address the host resolves to."""
        if _is_ip_literal(host):
            address = ipaddress.ip_address(host)
            if not (self._allow.permits_address(address) or is_public_address(address)):
                raise InputUrlRefused(f"URL address {host} is not a public address")
            return address
        try:
            answers = self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise InputInvalidUrl(f"could not resolve host {host!r}") from exc
        try:
            addresses = [ipaddress.ip_address(a) for a in answers]
        except ValueError as exc:
            raise InputInvalidUrl(f"could not resolve host {host!r}") from exc
        if not addresses:
            raise InputInvalidUrl(f"could not resolve host {host!r}")
        if not self._allow.permits_host(host):
            for address in addresses:
                if not (self._allow.permits_address(address) or is_public_address(address)):
                    # The address itself is not echoed: it would map the internal network.
                    raise InputUrlRefused(f"URL host {host!r} resolves to a non-public address")
        return addresses[0]

    def _read_body(self, response: httpx.Response, deadline: float) -> bytes:
        """The response body, refused as soon as it is known or seen to exceed ``max_bytes``."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # Decompressing would let a small body expand past the budget before we could count it.
            raise InputInvalidUrl(f"could not fetch image: unsupported Content-Encoding {encoding!r}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise InputOverLimit(f"image is {int(declared)} bytes, over the limit of {self.max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():  # identity-encoded, so these are the raw bytes
            size += len(chunk)
            if size > self.max_bytes:
                raise InputOverLimit(f"image is over the limit of {self.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise InputInvalidUrl(f"could not fetch image: timed out after {self.timeout:g} s")
            chunks.append(chunk)
        return b"".join(chunks)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _join(base: httpx.URL, location: str) -> httpx.URL:
    """Resolve a ``Location`` against the URL as the client wrote it (not the pinned address)."""
    try:
        return base.join(location)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InputUrlRefused("could not fetch image: redirect to a malformed URL") from exc


@contextlib.contextmanager
def _mapped_transport_errors() -> Iterator[None]:
    """Turn httpx's failures into our error, keeping the cause chained for logs only."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise InputInvalidUrl("could not fetch image: timed out") from exc
    except httpx.ConnectError as exc:
        raise InputInvalidUrl("could not fetch image: connection failed") from exc
    except httpx.HTTPError as exc:
        raise InputInvalidUrl(f"could not fetch image: transfer failed ({type(exc).__name__})") from exc
