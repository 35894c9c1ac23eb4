"""Hostile image sources (issue 11, items 4, 8 and 9), against real servers on 127.0.0.1.

- Time: a server that drips one byte at a time (in the headers, in a body with a
  Content-Length, in the TLS handshake) never trips a read timeout; the total deadline ends
  the request anyway, records it as a timeout and does not retry it within the run.
- Pixels: a header-only JPEG that claims 6000x6600, a JPEG cut short at an end marker, a PNG
  cut short, a 100000x100 strip, and the decoded pixels in flight across threads.
- Addresses: URLs that different parsers read as different hosts, and IPv6 forms that embed
  a private IPv4 address, are refused before any connection (a listening socket sees none).
"""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
from collections.abc import Iterator

import polars as pl
import pytest
import requests
from PIL import Image

from pipeline.images import ImageConfig, Rejected, fetch_images, normalize_image
from pipeline.images.deadline import Watchdog
from pipeline.images.fetch import Fetcher
from pipeline.images.normalize import pixel_budget
from pipeline.images.safety import AddressPolicy, BlockedPeer, GuardedAdapter, UrlRejected
from pipeline.sample_images import render_scene
from tests.image_server import (
    ImageServer,
    TcpServer,
    closed_port,
    drip_body,
    drip_headers,
    local_config,
    make_work,
    redirect,
    static,
)

DEADLINE = 1.0
DRIP = 0.1  # seconds per byte: far inside the 0.5 s read timeout of local_config


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    s = ImageServer()
    yield s
    s.close()


@pytest.fixture()
def listener() -> Iterator[TcpServer]:
    s = TcpServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    buf = io.BytesIO()
    render_scene("H1", "Speakers", "Speaker", size=(600, 660)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _timed_fetch(cfg: ImageConfig, url: str):
    f = Fetcher(cfg)
    try:
        t = time.monotonic()
        res = f.fetch(url)
        return res, time.monotonic() - t
    finally:
        f.close()


# ---------------------------------------------------------------------------------------------
# Item 4: a total deadline per request.


@pytest.mark.parametrize("where", ["headers", "body"])
def test_dripping_server_is_cut_at_the_deadline(server, jpeg, where) -> None:
    path = f"/drip/{where}.jpg"
    # Unbounded, either would take 30 s (300 bytes at 0.1 s), and again on every retry.
    responder = drip_headers(DRIP, 300) if where == "headers" else drip_body(jpeg[:300], DRIP)
    url = server.add(path, responder)
    res, elapsed = _timed_fetch(local_config(total_timeout=DEADLINE, retries=3), url)
    assert res.status == "timeout" and res.final, res
    assert res.error == f"request not finished within {DEADLINE}s"
    assert res.attempts == 1 and server.hits[path] == 1  # a deadline timeout is not retried
    assert elapsed < 3 * DEADLINE  # generous: unbounded it would be 30 s x 4 attempts


def test_dripping_tls_handshake_is_cut_at_the_deadline() -> None:
    """The socket is wrapped in TLS after it is registered: the deadline still reaches it."""
    # A TLS record header announcing 16 kB, then its body at one byte per DRIP.
    tcp = TcpServer(drip=b"\x16\x03\x03\x3f\xff" + bytes(295), interval=DRIP)
    try:
        url = f"https://127.0.0.1:{tcp.port}/x.jpg"
        res, elapsed = _timed_fetch(local_config(total_timeout=DEADLINE, retries=3), url)
    finally:
        tcp.close()
    assert res.status == "timeout" and res.attempts == 1, res
    assert tcp.accepted == 1
    assert elapsed < 3 * DEADLINE


def test_deadline_timeouts_are_recorded_by_the_stage(tmp_path, server, jpeg) -> None:
    urls = {
        "D1": server.add("/stage-drip/h.jpg", drip_headers(DRIP, 300)),
        "D2": server.add("/stage-drip/b.jpg", drip_body(jpeg[:300], DRIP)),
        "D3": server.add("/stage-drip/ok.jpg", static(jpeg)),
    }
    work = make_work(tmp_path, urls)
    s = fetch_images(work, config=local_config(total_timeout=DEADLINE, retries=3))
    rows = pl.read_parquet(work / "images.parquet")
    assert rows["status"].to_list() == ["timeout", "timeout", "ok"]
    assert rows["error"][0] == f"request not finished within {DEADLINE}s"
    assert s["failed"] == {"timeout": 2}
    assert server.hits["/stage-drip/h.jpg"] == server.hits["/stage-drip/b.jpg"] == 1


def test_watchdog_interrupts_a_blocked_read_and_releases_its_descriptors(listener) -> None:
    wd = Watchdog()
    try:
        with socket_to(listener.port) as sock:
            sock.settimeout(30)  # the socket's own timeout would wait 30 s
            with wd.limit(0.3) as d:
                d.watch(sock)
                assert sock.recv(1) == b""  # shut down: EOF at once
            assert d.expired and d.done and not d._fds
            with wd.limit(5.0) as d2:  # a deadline that is met stays unexpired
                d2.watch(sock)
            assert not d2.expired
    finally:
        wd.close()


def socket_to(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


# ---------------------------------------------------------------------------------------------
# Item 8: images that decode to something other than what they claim.


def _header_only(jpeg: bytes, width: int, height: int) -> bytes:
    """The markers of ``jpeg`` up to its scan header, the frame size patched, then EOI."""
    sos = jpeg.index(b"\xff\xda")
    head = bytearray(jpeg[: sos + 2 + struct.unpack(">H", jpeg[sos + 2 : sos + 4])[0]])
    sof = head.index(b"\xff\xc0")
    head[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(head) + b"\xff\xd9"


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_jpeg_that_stops_at_an_end_marker_is_truncated(jpeg) -> None:
    header_only = _header_only(jpeg, 6000, 6600)
    assert len(header_only) < 700
    cut = jpeg[: len(jpeg) // 2] + b"\xff\xd9"
    for data in (header_only, cut):
        with pytest.raises(Rejected) as e:
            normalize_image(data, ImageConfig())
        assert e.value.status == "truncated", e.value.message
    assert normalize_image(jpeg, ImageConfig()).width == 600  # the whole file passes


def test_png_cut_short_is_refused() -> None:
    """PNG's getexif() decodes the image; a decode error there must not be swallowed."""
    data = _png(render_scene("H2", "Cables", "Cable", size=(600, 660)))
    iend = b"\x00\x00\x00\x00IEND\xaeB`\x82"
    with pytest.raises(Rejected) as e:
        normalize_image(data[: len(data) // 2] + iend, ImageConfig())
    assert e.value.status == "corrupt"


def test_extreme_aspect_ratio_is_refused_before_decoding() -> None:
    for size in ((100_000, 100), (100, 100_000), (2_100, 100)):
        with pytest.raises(Rejected) as e:
            normalize_image(_png(Image.new("L", size, 200)), ImageConfig())
        assert e.value.status == "extreme_aspect", size
    strip = Image.linear_gradient("L").resize((2_000, 100))
    assert normalize_image(_png(strip), ImageConfig()).height == 51  # 20:1 passes (1024x51)
    wide = _png(Image.linear_gradient("L").resize((3_000, 100)))
    assert normalize_image(wide, ImageConfig(max_aspect=40)).width == ImageConfig().max_side


def test_stage_stores_none_of_them(tmp_path, server, jpeg) -> None:
    urls = {
        "E1": server.add("/e/header-only.jpg", static(_header_only(jpeg, 6000, 6600))),
        "E2": server.add("/e/strip.png", static(_png(Image.new("L", (100_000, 100))))),
        "E3": server.add("/e/ok.jpg", static(jpeg)),
    }
    work = make_work(tmp_path, urls)
    s = fetch_images(work, config=local_config())
    rows = pl.read_parquet(work / "images.parquet")
    assert rows["status"].to_list() == ["truncated", "extreme_aspect", "ok"]
    assert rows["sha256"].null_count() == 2
    assert s["failed"] == {"extreme_aspect": 1, "truncated": 1}


def test_pixels_in_flight_are_bounded_per_process() -> None:
    """8 threads decode 3000x3000 PNGs (9 M pixels each) under a 20 M budget: at most two at
    a time. A budget below one image lets that image run alone."""
    data = _png(Image.linear_gradient("L").resize((3_000, 3_000)))
    for cap in (20_000_017, 5_000_011):
        cfg = ImageConfig(max_pixels_in_flight=cap)
        out: list[int] = []

        def work(cfg: ImageConfig = cfg, out: list[int] = out) -> None:
            out.append(normalize_image(data, cfg).width)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        budget = pixel_budget(cap)
        assert out == [ImageConfig().max_side] * 8
        assert budget.in_use == 0 and min(cap, 9_000_000) <= budget.peak <= cap


# ---------------------------------------------------------------------------------------------
# Item 9: refused before connecting.

EMBEDDED_METADATA = [
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:a9fe:a9fe::1",  # 6to4
    "::a9fe:a9fe",  # IPv4-compatible
    "::ffff:0:a9fe:a9fe",  # IPv4-translated
    "::ffff:a9fe:a9fe",  # IPv4-mapped
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254
]


def test_address_policy_decodes_embedded_ipv4() -> None:
    p = AddressPolicy()
    for ip in EMBEDDED_METADATA + ["64:ff9b::7f00:1", "::ffff:0:a00:1", "2002:c0a8:101::"]:
        assert not p.ip_allowed(ip), ip
    for ip in ["64:ff9b::808:808", "2002:808:808::1", "::ffff:808:808", "2606:4700::1111"]:
        assert p.ip_allowed(ip), ip
    assert AddressPolicy(["127.0.0.1/32"]).ip_allowed("::ffff:127.0.0.1")


def _refusals(cfg: ImageConfig, urls: list[str]) -> list[tuple[str, str | None]]:
    f = Fetcher(cfg)
    try:
        return [(f.fetch(u).status, u) for u in urls]
    finally:
        f.close()


def test_ssrf_edges_are_refused_without_connecting(listener) -> None:
    port = listener.port
    urls = [
        f"http://127.0.0.1:{port}\\@8.8.8.8/",  # urllib.parse: host 8.8.8.8; urllib3: 127.0.0.1
        f"http://127.0.0.1:{closed_port()}\\@8.8.8.8/",  # a closed port is no different
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://[::127.0.0.1]:{port}/",
        f"http://[64:ff9b::7f00:1]:{port}/",
        f"http://[2002:7f00:1::]:{port}/",
        *(f"http://[{ip}]/latest/meta-data" for ip in EMBEDDED_METADATA),
    ]
    got = _refusals(ImageConfig(retries=0), urls)
    assert got == [("blocked_address", u) for u in urls]
    assert listener.accepted == 0


def test_redirect_to_an_edge_is_refused_without_connecting(server) -> None:
    other = TcpServer(host="127.0.0.2")  # loopback, but outside the allowed 127.0.0.1/32
    try:
        urls = [
            server.add("/ssrf/a.jpg", redirect(f"http://127.0.0.2:{other.port}\\@8.8.8.8/")),
            server.add("/ssrf/b.jpg", redirect("http://[64:ff9b::a9fe:a9fe]/")),
        ]
        got = _refusals(local_config(retries=0), urls)
    finally:
        other.close()
    assert got == [("blocked_address", u) for u in urls]
    assert other.accepted == 0


def test_connection_guard_refuses_before_connecting(listener) -> None:
    """The guard inside the connection code (what a host re-resolving to a private address
    after the pre-check meets) refuses without opening a TCP connection."""
    with requests.Session() as s:
        s.mount("http://", GuardedAdapter(AddressPolicy()))
        with pytest.raises(BlockedPeer):
            s.get(f"http://127.0.0.1:{listener.port}/x.jpg", timeout=2)
        with pytest.raises(BlockedPeer):
            s.get(f"http://localhost:{listener.port}/x.jpg", timeout=2)
    assert listener.accepted == 0


def test_check_url_returns_what_urllib3_connects_to() -> None:
    p = AddressPolicy(["127.0.0.1/32"])
    assert p.check_url("http://127.0.0.1:8\\@8.8.8.8/a b") == "http://127.0.0.1:8/%5C@8.8.8.8/a%20b"
    with pytest.raises(UrlRejected) as e:
        AddressPolicy().check_url("http://127.0.0.1:8\\@8.8.8.8/")
    assert e.value.status == "blocked_address"
