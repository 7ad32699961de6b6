"""GEARS' processed Norman file from Harvard Dataverse: a resumable, checked download, and the
path a real data source names."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from helpers.files import atomic_path
from helpers.progress import progress_bar
from helpers.reference import REPO_ROOT


NORMAN_DATAVERSE_URL = "https://dataverse.harvard.edu/api/access/datafile/6154020"


NORMAN_ZIP_BYTES = 168_758_985  # norman.zip as served by Dataverse (GEARS' datafile 6154020)


NORMAN_H5AD_MEMBER = "norman/perturb_processed.h5ad"


class DataSourceUnavailable(RuntimeError):
    """A download that could not be made (offline, moved, or a file that failed its check)."""


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``hashlib`` algorithm name), read in 8 MiB blocks."""
    import hashlib

    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        while block := file.read(1 << 23):
            digest.update(block)
    return digest.hexdigest()


def download_norman(cache_dir: Path | str, url: str = NORMAN_DATAVERSE_URL,
                    expected_bytes: int | None = None, expected_md5: str | None = None,
                    timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch GEARS' processed Norman data (``norman.zip``) from Harvard Dataverse into
    ``cache_dir`` and unpack ``norman/perturb_processed.h5ad``; a cached copy is reused.

    The download sends a User-Agent (Dataverse refuses some clients without one), resumes a
    broken transfer from ``norman.zip.part``, and checks the size and, where known, the MD5
    (``expected_md5``, else the checksum Dataverse's API reports for the file, when it answers)
    before the zip is trusted (``expected_bytes``: Dataverse's size for Dataverse's address;
    another address, e.g. a mirror, is checked against the length its server announces).
    Errors say what happened: an HTTP refusal (403) is not "offline".
    """
    if expected_bytes is None and url == NORMAN_DATAVERSE_URL:
        expected_bytes = NORMAN_ZIP_BYTES
    cache_dir = Path(cache_dir)
    h5ad_path = cache_dir / NORMAN_H5AD_MEMBER
    if h5ad_path.is_file():
        return h5ad_path
    zip_path = cache_dir / "norman.zip"
    if not zip_path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        if expected_md5 is None and url == NORMAN_DATAVERSE_URL:
            expected_md5 = _dataverse_md5(url, timeout)
        part = zip_path.with_name(zip_path.name + ".part")
        _resumable_download(url, part, timeout, progress)
        size = part.stat().st_size
        if expected_bytes is not None and size != expected_bytes:
            part.unlink()
            raise DataSourceUnavailable(
                f"{url}: downloaded {size:,} bytes, expected {expected_bytes:,}; the file changed or the "
                f"transfer broke. What to do: run again, or download norman.zip by hand ({MANUAL_DOWNLOAD}), "
                "unzip it and pass data_source='<path>/norman/perturb_processed.h5ad'")
        if expected_md5 is not None and file_digest(part, "md5") != expected_md5:
            part.unlink()
            raise DataSourceUnavailable(f"{url}: the downloaded file's MD5 differs from {expected_md5}; it "
                                        "was removed. What to do: run again (the transfer was damaged)")
        part.replace(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as archive, atomic_path(h5ad_path) as tmp:
            with archive.open(NORMAN_H5AD_MEMBER) as member, open(tmp, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as error:
        from helpers.data import DataValidationError  # data reads what this module downloads

        raise DataValidationError(f"{zip_path}: not GEARS' norman.zip ({error}). What to do: delete it "
                                  f"and download again, or pass the .h5ad's path") from error
    return h5ad_path


MANUAL_DOWNLOAD = "https://dataverse.harvard.edu/file.xhtml?fileId=6154020"


USER_AGENT = "genemamba-gears-book (https://github.com; python-urllib)"


def _request(url: str, start: int = 0) -> urllib.request.Request:
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.Request(url, headers=headers)


def _resumable_download(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Download ``url`` into ``part``, continuing from what ``part`` already holds when the server
    honours a byte range (else starting over)."""
    start = part.stat().st_size if part.is_file() else 0
    try:
        with urllib.request.urlopen(_request(url, start), timeout=timeout) as response:
            resumed = start > 0 and getattr(response, "status", 200) == 206
            length = response.headers.get("Content-Length")
            total = (int(length) + (start if resumed else 0)) if length else None
            with open(part, "ab" if resumed else "wb") as out, \
                    progress_bar(None, progress, total=total, initial=start if resumed else 0, unit="B",
                                 unit_scale=True, desc="norman.zip") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        if total is not None and part.stat().st_size != total:
            raise OSError(f"the transfer stopped at {part.stat().st_size:,} of {total:,} bytes")
    except urllib.error.HTTPError as error:
        why = ("Dataverse refused the request (HTTP 403 Forbidden): it does so for some clients and "
               "networks, or when a file needs its terms accepted in a browser" if error.code == 403
               else f"the server answered HTTP {error.code} {error.reason}")
        raise DataSourceUnavailable(
            f"cannot download Norman data from {url}: {why}. What to do: download norman.zip by hand "
            f"from {MANUAL_DOWNLOAD}, unzip it and pass data_source='<path>/norman/perturb_processed.h5ad'; "
            f"or use data_source='simulated' (the embedded default)") from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataSourceUnavailable(
            f"cannot download Norman data from {url} ({reason}); what was received so far is kept in "
            f"{part} and the next run continues from it. What to do: check the network and run again; "
            f"or download norman.zip by hand from {MANUAL_DOWNLOAD}, unzip it and pass "
            "data_source='<path>/norman/perturb_processed.h5ad'; or use data_source='simulated'") from error


def _dataverse_md5(url: str, timeout: float) -> str | None:
    """The MD5 Dataverse's API reports for a datafile (``/api/files/<id>``), or None when it does
    not answer (the size check still applies)."""
    import json

    file_id = url.rstrip("/").rsplit("/", 1)[-1]
    api = url.split("/api/")[0] + f"/api/files/{file_id}"
    try:
        with urllib.request.urlopen(_request(api), timeout=timeout) as response:
            checksum = json.load(response)["data"]["dataFile"].get("checksum", {})
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError):
        return None
    return checksum.get("value") if checksum.get("type", "").upper() == "MD5" else None


EXTERNAL_CACHE = REPO_ROOT / "data" / "external"


def data_file(data_source: str, cache_dir: Path = EXTERNAL_CACHE) -> Path:
    """The ``.h5ad`` a real data source names: GEARS' Norman file for ``'dataverse'``
    (downloaded once into ``cache_dir``, or ``$HELPERS_DATA_CACHE``, from Dataverse or from
    ``$HELPERS_NORMAN_URL``: a mirror or a local ``file://`` copy of ``norman.zip``), or the
    path given, which must exist."""
    if data_source == "dataverse":
        return download_norman(Path(os.environ.get("HELPERS_DATA_CACHE", cache_dir)),
                               url=os.environ.get("HELPERS_NORMAN_URL", NORMAN_DATAVERSE_URL))
    from helpers.data import DataValidationError  # data reads what this module downloads

    path = Path(data_source).expanduser()
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found. What to do: pass the path of a "
                                  "GEARS-format .h5ad, or data_source='simulated'")
    return path
