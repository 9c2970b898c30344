"""Keyed-hash pseudonyms and the rules that keep patient identifiers out of outputs.

Why a keyed hash (HMAC-SHA256) and not a plain hash: hospital identifiers are short and
guessable (``MRN 000123``), so ``sha256(id)`` can be reversed by hashing every candidate.
With a secret key only the key holder can link a pseudonym back to a patient; the same
key gives the same pseudonyms on every run, so DVC outputs are reproducible.

What never reaches ``OUT_DIR``: the DICOM attributes in :data:`PHI_KEYWORDS`, any UID,
and manifest columns whose names look like identifiers (:func:`is_identifier_column`).
Technical metadata is copied only from the allow-list :data:`TECHNICAL_KEYWORDS`, so a
vendor's private or unexpected attribute cannot leak by accident. File and folder names
are written only as keyed tokens (:func:`path_token`): exports name folders after
patients, and a file whose header is never read (an unreferenced one) gives no value to
look for. Free text that must be written (error reasons, notes) goes through
:class:`Redactor`, which replaces every identifier value seen in the inputs, and through
:func:`resolve_file_refs`, which turns the paths a reason mentions into their tokens.
"""

from __future__ import annotations

import hmac
import re
from typing import Callable, Iterable

PSEUDONYM_HEX = 16
"""Hex characters kept from the HMAC: 64 bits, collision-free for any cohort size."""

PHI_KEYWORDS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "IssuerOfPatientID",
    "MedicalRecordLocator",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "RequestingPhysician",
    "StationName",
    "DeviceSerialNumber",
)
"""DICOM attributes whose values are identifiers (a subset of PS3.15 Table E.1-1)."""

TECHNICAL_KEYWORDS: dict[str, str] = {
    "manufacturer": "Manufacturer",
    "model": "ManufacturerModelName",
    "kvp": "KVP",
    "slice_thickness": "SliceThickness",
    "convolution_kernel": "ConvolutionKernel",
    "field_strength": "MagneticFieldStrength",
    "body_part": "BodyPartExamined",
}
"""Index column -> DICOM keyword: the only header values copied to the index."""

_IDENTIFIER_COLUMN = re.compile(
    r"(name|birth|dob|accession|uid|mrn|ssn|address|phone|email|date|institution|physician)",
    re.IGNORECASE,
)

_MIN_SUBSTRING = 4
"""Identifier values shorter than this are redacted only where they are a whole path part."""

_MIN_DIGITS_SUBSTRING = 6
"""All-digit values (``"0001"``) shorter than this are also only redacted as whole parts:
as substrings they would hit every UID, date and instance number in the text."""

PATH_TOKEN_HEX = 12
"""Hex characters per path component token: 48 bits, so two names in one folder of a
million files collide with a chance below one in 500."""

SAFE_EXTENSIONS: tuple[str, ...] = (
    ".nii.gz", ".dcm", ".dicom", ".dic", ".ima", ".img", ".hdr", ".nii", ".gz", ".zip", ".mha", ".mhd",
    ".nrrd", ".raw", ".json", ".csv", ".tsv", ".txt", ".xml", ".pdf", ".jpg", ".jpeg", ".png", ".bmp",
    ".tif", ".tiff", ".log", ".ini", ".db",
)
"""File extensions kept in clear in a tokenised path (matched ignoring case, longest
first): they say what kind of file it is and cannot name anyone. Any other suffix is
part of the token (``Doe.Jane`` has no safe extension)."""

SAFE_NAMES: frozenset[str] = frozenset({"DICOMDIR", "DICOM", ".DS_Store", "Thumbs.db", "desktop.ini"})
"""Whole file or folder names written in clear: fixed names of media and OS files."""

FILE_REF = "\x1e"
"""Delimits a raw-folder path inside a reason (:func:`file_ref`) until it is written."""

_FILE_REF_PATTERN = re.compile(FILE_REF + "([^" + FILE_REF + "]*)" + FILE_REF)


def pseudonym(key: str, namespace: str, value: str) -> str:
    """Return the keyed pseudonym of ``value``: HMAC-SHA256, first 16 hex characters.

    Args:
        key: the secret (``PIPELINE_PSEUDONYM_KEY``); at least 8 characters.
        namespace: keeps pseudonyms of different kinds apart (``"patient"``,
            ``"series"``), so a patient id and a series UID never share a pseudonym.
        value: the identifier to hide.
    """
    message = _bytes(f"{namespace}\x1f{value}")
    # hmac.digest is the one-shot form of hmac.new(...).digest(): the same bytes, in C
    # (a run hashes every file's path, so this is a share of an unchanged re-ingest).
    return hmac.digest(_bytes(key), message, "sha256").hex()[:PSEUDONYM_HEX]


def _bytes(text: str) -> bytes:
    """UTF-8 bytes of ``text``, with the original bytes of a non-UTF-8 file name.

    ``os.walk`` returns a name that is not UTF-8 (``b'M\\xfcller.dcm'`` from an old share)
    with surrogate escapes; ``surrogateescape`` turns them back into those bytes, so the
    name hashes to one stable value and never to a ``UnicodeEncodeError``.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "surrogatepass")


def path_token(key: str, path: str) -> str:
    """The form of a raw-folder path written to outputs: every name replaced by a token.

    Each ``/``-separated component becomes ``~`` and 12 hex characters of its keyed hash,
    so one folder keeps one token across rows (a series still reads as one folder), but
    no name, MRN or date in a file or folder name is written. The extension of the last
    component is kept when it is in :data:`SAFE_EXTENSIONS`, and the fixed names in
    :data:`SAFE_NAMES` are kept whole. ``pipeline.io.ledger`` maps tokens back to paths
    on the machine that holds the raw folder and the key.

    Args:
        key: the pseudonym key.
        path: POSIX path relative to the raw folder.
    """
    parts = path.split("/")
    return "/".join(_component_token(key, part, last=i == len(parts) - 1) for i, part in enumerate(parts))


class PathTokens:
    """:func:`path_token` under one key, for all the paths of one run: each token made once.

    A run writes every file's path (ledger rows, the paths reasons name), and the files
    of one folder share its name: each folder name, and each whole path, is hashed once.
    """

    def __init__(self, key: str) -> None:
        self._key = key
        self._folders: dict[str, str] = {}
        self._paths: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        token = self._paths.get(path)
        if token is None:
            *folders, name = path.split("/")
            parts = [self._folder(part) for part in folders]
            parts.append(_component_token(self._key, name, last=True))
            token = self._paths[path] = "/".join(parts)
        return token

    def _folder(self, name: str) -> str:
        token = self._folders.get(name)
        if token is None:
            token = self._folders[name] = _component_token(self._key, name, last=False)
        return token


def _component_token(key: str, name: str, *, last: bool) -> str:
    if name in SAFE_NAMES or not name:
        return name
    extension = ""
    if last:
        lowered = name.lower()
        if lowered.endswith(SAFE_EXTENSIONS):  # one test for the common name without a safe extension
            extension = next((name[-len(e):] for e in SAFE_EXTENSIONS if lowered.endswith(e) and len(name) > len(e)), "")
    return "~" + pseudonym(key, "path", name)[:PATH_TOKEN_HEX] + extension


def file_ref(path: str) -> str:
    """Mark a raw-folder path inside a reason, so the writer replaces it by its token."""
    return f"{FILE_REF}{path}{FILE_REF}"


def resolve_file_refs(text: str, tokenise: Callable[[str], str]) -> str:
    """Replace every :func:`file_ref` in ``text`` by ``tokenise(path)``."""
    if FILE_REF not in text:
        return text
    return _FILE_REF_PATTERN.sub(lambda match: tokenise(match.group(1)), text)


def is_identifier_column(name: str) -> bool:
    """Whether a manifest column name suggests identifiers (names, dates, UIDs, MRNs)."""
    return bool(_IDENTIFIER_COLUMN.search(name))


def phi_values(dataset: object) -> set[str]:
    """The identifier strings in one DICOM header, for redaction (never written).

    Person names are also split on ``^`` so a folder called ``DOE_JOHN`` is caught by
    its parts.
    """
    found: set[str] = set()
    for keyword in PHI_KEYWORDS:
        value = getattr(dataset, keyword, None)
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            found.add(text)
            if "^" in text:
                found.update(part.strip() for part in text.split("^") if len(part.strip()) >= 4)
    return found


class Redactor:
    """Replace identifier values inside free text (ledger paths, error reasons).

    Values of at least 4 characters (6 when all digits) are replaced wherever they
    occur, except that a value starting or ending with a digit is never cut out of a
    longer number: PatientID ``12345678`` is replaced in ``MRN12345678`` but not in
    ``integer 9123456789 out of bounds``, which it does not identify. Shorter values (a
    PatientID of ``"7"``) are replaced only where they are a whole ``/``-separated part,
    because replacing every ``7`` would destroy the text without protecting anyone.
    """

    def __init__(self, key: str) -> None:
        self._key = key
        self._tokens: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str], token: str | None = None) -> None:
        """Register identifier values; ``token`` replaces them (default: a keyed hash)."""
        for value in values:
            value = value.strip()
            if value and value not in self._tokens:
                self._tokens[value] = token or "~" + pseudonym(self._key, "phi", value)[:8]
                self._pattern = None

    def __call__(self, text: str) -> str:
        """Return ``text`` with every registered value replaced by its token."""
        if not self._tokens or not text:
            return text
        parts = text.split("/")
        parts = [self._tokens.get(part, part) for part in parts]
        text = "/".join(parts)
        if self._pattern is None:
            long_values = sorted((v for v in self._tokens if _substring_safe(v)), key=len, reverse=True)
            self._pattern = re.compile("|".join(map(_bounded, long_values))) if long_values else None
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda match: self._tokens[match.group(0)], text)


def _bounded(value: str) -> str:
    """``value`` as a pattern that does not match inside a longer number."""
    before = r"(?<!\d)" if value[0].isdigit() else ""
    after = r"(?!\d)" if value[-1].isdigit() else ""
    return before + re.escape(value) + after


def _substring_safe(value: str) -> bool:
    if value.isdigit():
        return len(value) >= _MIN_DIGITS_SUBSTRING
    return len(value) >= _MIN_SUBSTRING
