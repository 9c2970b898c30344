"""Telling a file's fault (a ledger reason) from the environment's (the stage stops)."""

from __future__ import annotations

from pipeline.io.failures import DependencyError, environment_error, short_error
from pipeline.io.pixels import PixelError


def test_an_import_error_behind_a_pixel_error_is_an_environment_error() -> None:
    try:
        try:
            raise ModuleNotFoundError("No module named 'pylibjpeg'")
        except ImportError as cause:
            raise PixelError("a.dcm", "pixel data cannot be decoded") from cause
    except PixelError as error:
        found = environment_error(error)
    assert isinstance(found, DependencyError) and "pylibjpeg" in str(found)
    assert environment_error(ValueError("bad file")) is None


def test_an_exhausted_machine_is_the_environment_and_a_bad_file_is_not() -> None:
    import errno

    found = environment_error(OSError(errno.EMFILE, "Too many open files"))
    assert isinstance(found, DependencyError) and "OSError: [Errno 24] Too many open files" in str(found)
    assert environment_error(OSError(errno.EIO, "Input/output error")) is None
    # An ImportError carried only as context (not ``raise ... from``) is not the cause.
    try:
        try:
            raise ImportError("optional plugin")
        except ImportError:
            raise ValueError("bad pixel data") from None
    except ValueError as error:
        assert environment_error(error) is None


def test_a_ledger_reason_is_one_line_without_the_files_path() -> None:
    path = "/data/raw/Doe_Jane/0001.dcm"
    error = ValueError(f"cannot read {path}:\n  bad   tag\n" + "x" * 300)
    text = short_error(error, path)
    assert text.startswith("cannot read <file>: bad tag xxx") and "Doe_Jane" not in text
    assert len(text) == 160 and "\n" not in text
