"""Progress bars that never draw into a chapter's page (they go to the book runner's console)."""

from __future__ import annotations

import os
from typing import Any

from tqdm import tqdm


PROGRESS_FILE_VARIABLE = "HELPERS_PROGRESS_FILE"


def progress_bar(iterable: Any = None, enabled: bool = True, **options: Any) -> tqdm:
    """A tqdm progress bar that never draws into a chapter's page.

    In a chapter run by the book runner (``python -m helpers.book``), the bar is written to the
    runner's progress file (``$HELPERS_PROGRESS_FILE``), which the runner copies to its console, so
    whoever runs ``make book`` sees steps and an ETA while the page stays clean (a kernel's own
    stdout and stderr end up in the page). Elsewhere it draws only on a terminal: in a notebook
    opened by hand, a log or CI it stays silent. ``enabled=False`` silences it everywhere."""
    path = os.environ.get(PROGRESS_FILE_VARIABLE)
    if enabled and path:
        return tqdm(iterable, file=_progress_stream(path), disable=False, dynamic_ncols=False, ncols=100, **options)
    return tqdm(iterable, disable=None if enabled else True, **options)


_progress_streams: dict[str, Any] = {}


def _progress_stream(path: str):
    if path not in _progress_streams:
        _progress_streams[path] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives with the process)
    return _progress_streams[path]
