"""Find a weight source's file on disk or on the web, and verify its checksum.

A checkpoint is found in this order (:func:`resolve_checkpoint`):

1. an explicit file path given by the user;
2. the torch hub cache, ``torch.hub.get_dir()/checkpoints`` (honours ``TORCH_HOME``),
   where torchvision and ``torch.hub`` put the same files;
3. a download with a short, hard timeout and a checksum check;
4. otherwise a :class:`WeightsNotFoundError` naming the file, the folder searched, the
   URL and how to copy the file onto an offline machine. Never a hang: hospital
   machines are often air-gapped, and a DNS lookup or TCP connect there can block for
   minutes, so the whole connect phase runs under a deadline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import queue
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.digests import sha256_file
from pipeline.errors import ConfigError
from pipeline.models.errors import WeightsError, WeightsNotFoundError
from pipeline.models.sources import WeightSource

DOWNLOAD_TIMEOUT_ENV = "PIPELINE_WEIGHTS_TIMEOUT_S"
"""Seconds allowed to connect and to wait for each chunk of a download; ``0`` disables downloads."""

DEFAULT_DOWNLOAD_TIMEOUT_S = 10.0


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``, read at call time so ``TORCH_HOME`` is honoured."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def download_timeout_s(explicit: float | None = None) -> float:
    """The download timeout: ``explicit`` if given, else ``$PIPELINE_WEIGHTS_TIMEOUT_S``, else 10 s.

    Raises:
        ConfigError: the value is not a number of seconds >= 0.
    """
    if explicit is not None:
        value: Any = explicit
    else:
        value = os.environ.get(DOWNLOAD_TIMEOUT_ENV, DEFAULT_DOWNLOAD_TIMEOUT_S)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigError(
            f"{DOWNLOAD_TIMEOUT_ENV!r} must be a number of seconds >= 0; got {value!r}. "
            "Use 0 to disable downloads on an offline machine."
        )
    return seconds


def check_sha256(path: Path, actual: str, expected: str | None, *, origin: str) -> None:
    """Raise when ``actual`` does not start with ``expected`` (a full digest or a prefix)."""
    if expected is None or actual.startswith(expected.lower()):
        return
    raise WeightsError(
        f"checkpoint {str(path)!r} must have SHA-256 starting with {expected!r} ({origin}); got {actual!r}. "
        "The file is corrupt, truncated or a different checkpoint: delete it and copy it again, "
        "or pass its own SHA-256 as 'model.weights_sha256' if you trust it."
    )


@dataclass(frozen=True)
class ResolvedFile:
    """A checkpoint on disk that passed its checksum; ``how`` is ``path``, ``cache`` or ``download``."""

    path: Path
    sha256: str
    expected: str | None
    how: str


def resolve_checkpoint(
    row: WeightSource,
    *,
    path: str | Path | None = None,
    expected_sha256: str | None = None,
    timeout_s: float | None = None,
) -> ResolvedFile:
    """Find ``row``'s file (explicit path, hub cache, download) and verify its checksum.

    Args:
        row: the weight source.
        path: a file the user named; when given, nothing else is searched.
        expected_sha256: overrides the row's checksum (a site's own copy of a file).
        timeout_s: download timeout; ``None`` reads ``$PIPELINE_WEIGHTS_TIMEOUT_S``.

    Raises:
        WeightsNotFoundError: the file is not at hand and could not be downloaded.
        WeightsError: the file's SHA-256 is not the expected one.
    """
    expected = expected_sha256 or row.expected_hash
    origin = "given as weights_sha256" if expected_sha256 else f"published for {row.source}/{row.arch}"
    if path is not None:
        return verify_file(path, expected, origin=origin)
    folder = hub_checkpoint_dir()
    cached = folder / row.file_name
    if cached.is_file():
        return dataclasses.replace(verify_file(cached, expected, origin=origin), how="cache")
    timeout = download_timeout_s(timeout_s)
    if timeout == 0:
        reason = f"downloads are disabled (${DOWNLOAD_TIMEOUT_ENV}=0)"
    else:
        try:
            digest = download_checkpoint(row.url, cached, expected_sha256=expected, timeout_s=timeout)
            return ResolvedFile(cached, digest, expected, "download")
        except _DownloadFailed as error:
            reason = str(error)
    raise WeightsNotFoundError(_not_found_message(row, folder, reason))


def verify_file(path: str | Path, expected_sha256: str | None, *, origin: str = "given as weights_sha256") -> ResolvedFile:
    """A file the user named: it must exist and match ``expected_sha256`` when one is given."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"weights file {str(path)!r} must exist; it was not found. Check 'model.weights' "
            f"(relative paths are read from {os.getcwd()!r})."
        )
    digest = sha256_file(path)
    check_sha256(path, digest, expected_sha256, origin=origin)
    return ResolvedFile(path, digest, expected_sha256, "path")


def _not_found_message(row: WeightSource, folder: Path, reason: str) -> str:
    return (
        f"{row.source} weights for {row.arch} must be the file {row.file_name!r} in {str(folder)!r}; "
        f"it is not there and the download from {row.url} failed: {reason}. "
        f"On a machine with internet run `curl -L -o {row.file_name} {row.url}` (or download it in a "
        f"browser), copy the file onto this machine into {str(folder)!r} (set TORCH_HOME to use another "
        f"folder: the file goes in $TORCH_HOME/hub/checkpoints), or set 'model.weights' to the file's "
        f"path. Use model.weights 'none' to train from random initialisation instead."
    )


class _DownloadFailed(Exception):
    """A download did not complete; the message is the reason, for the user."""


def download_checkpoint(
    url: str, dest: Path, *, expected_sha256: str | None, timeout_s: float, chunk_bytes: int = 1 << 20
) -> str:
    """Download ``url`` to ``dest`` atomically, verifying the SHA-256 as it streams.

    The connect phase (proxy, DNS, TCP, TLS, response headers) runs in a daemon thread
    that is abandoned after ``timeout_s``: ``urlopen``'s own timeout does not cover the
    DNS lookup, which is what hangs on an air-gapped machine. Each later read waits at
    most ``timeout_s`` too. The file appears under ``dest`` only once complete and
    verified.

    Returns:
        The file's hex SHA-256.

    Raises:
        _DownloadFailed: no connection, HTTP error, timeout, or a checksum mismatch.
    """
    answer = _connect(url, timeout_s)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        answer.close()
        raise _DownloadFailed(f"cannot create {str(dest.parent)!r}: {error}") from None
    partial = dest.with_name(dest.name + ".partial")
    digest = hashlib.sha256()
    try:
        with answer, open(partial, "wb") as out:
            while chunk := answer.read(chunk_bytes):
                digest.update(chunk)
                out.write(chunk)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise _DownloadFailed(f"interrupted: {type(error).__name__}: {error}") from None
    actual = digest.hexdigest()
    if expected_sha256 is not None and not actual.startswith(expected_sha256.lower()):
        partial.unlink(missing_ok=True)
        raise _DownloadFailed(f"the downloaded file has SHA-256 {actual!r}, expected {expected_sha256!r}")
    os.replace(partial, dest)
    return actual


def _connect(url: str, timeout_s: float) -> Any:
    """The open HTTP response for ``url``, or :class:`_DownloadFailed` within ``timeout_s``."""
    answers: queue.Queue = queue.Queue(maxsize=1)

    def connect() -> None:
        try:
            # A fresh opener reads the proxy variables now; urlopen's global one keeps
            # those of its first call.
            answers.put(urllib.request.build_opener().open(url, timeout=timeout_s))
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            answers.put(error)

    threading.Thread(target=connect, name="weights-connect", daemon=True).start()
    try:
        answer = answers.get(timeout=timeout_s)
    except queue.Empty:
        raise _DownloadFailed(f"no answer within {timeout_s:g} s (${DOWNLOAD_TIMEOUT_ENV})") from None
    if isinstance(answer, BaseException):
        raise _DownloadFailed(f"{type(answer).__name__}: {answer}")
    return answer
