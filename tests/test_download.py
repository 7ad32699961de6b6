"""Downloading norman.zip: a User-Agent, resuming a broken transfer, checksums, and errors that
say what happened (a refusal is not "offline"). A local HTTP server stands in for Dataverse."""

from __future__ import annotations

import hashlib
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import download


class _Server:
    """Serves ``payload`` at /norman.zip with byte ranges, or answers ``status`` to everything;
    records each request's headers."""

    def __init__(self, payload: bytes = b"", status: int = 200):
        self.payload, self.status, self.requests = payload, status, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append(dict(self.headers))
                if server.status != 200:
                    self.send_error(server.status)
                    return
                body, code = server.payload, 200
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    body, code = body[start:], 206
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/norman.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def zipped(tmp_path) -> bytes:
    """A norman.zip holding a small GEARS-format h5ad under Dataverse's member name."""
    from conftest import make_gears_adata

    h5ad = tmp_path / "perturb_processed.h5ad"
    make_gears_adata({"ctrl": 20, "KLF1+ctrl": 10}).write_h5ad(h5ad)
    with zipfile.ZipFile(tmp_path / "norman.zip", "w") as archive:
        archive.write(h5ad, download.NORMAN_H5AD_MEMBER)
    return (tmp_path / "norman.zip").read_bytes()


def test_a_broken_transfer_resumes_where_it_stopped(zipped, tmp_path):
    server = _Server(zipped)
    cache = tmp_path / "cache"
    cache.mkdir()
    half = len(zipped) // 2
    (cache / "norman.zip.part").write_bytes(zipped[:half])  # what a broken run left
    try:
        path = download.download_norman(cache, url=server.url, expected_bytes=len(zipped),
                                    expected_md5=hashlib.md5(zipped).hexdigest(), progress=False)
    finally:
        server.close()
    assert server.requests[0]["Range"] == f"bytes={half}-"
    assert server.requests[0]["User-Agent"].startswith("genemamba-gears-book")
    assert (cache / "norman.zip").read_bytes() == zipped
    assert not (cache / "norman.zip.part").exists()
    assert path == cache / download.NORMAN_H5AD_MEMBER and path.stat().st_size > 0


def test_a_wrong_checksum_is_refused_and_removed(zipped, tmp_path):
    server = _Server(zipped)
    try:
        with pytest.raises(download.DataSourceUnavailable, match="MD5"):
            download.download_norman(tmp_path / "cache", url=server.url, expected_bytes=len(zipped),
                                 expected_md5="0" * 32, progress=False)
    finally:
        server.close()
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_refusal_is_reported_as_a_refusal(tmp_path):
    server = _Server(status=403)
    try:
        with pytest.raises(download.DataSourceUnavailable) as error:
            download.download_norman(tmp_path, url=server.url, progress=False)
    finally:
        server.close()
    message = str(error.value)
    assert "403 Forbidden" in message and "offline" not in message
    assert download.MANUAL_DOWNLOAD in message and "data_source=" in message
    assert list(tmp_path.iterdir()) == []
