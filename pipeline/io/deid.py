"""Keyed-hash pseudonyms and the rules that keep patient identifiers out of outputs.

Why a keyed hash (HMAC-SHA256) and not a plain hash: hospital identifiers are short and
guessable (``MRN 000123``), so ``sha256(id)`` can be reversed by hashing every candidate.
With a secret key only the key holder can link a pseudonym back to a patient; the same
key gives the same pseudonyms on every run, so DVC outputs are reproducible.

What never reaches ``OUT_DIR``: the DICOM attributes in :data:`PHI_KEYWORDS`, any UID,
and manifest columns whose names look like identifiers (:func:`is_identifier_column`).
Technical metadata is copied only from the allow-list :data:`TECHNICAL_KEYWORDS`, so a
vendor's private or unexpected attribute cannot leak by accident. Free text that must be
written (ledger paths, error reasons) goes through :class:`Redactor`, which replaces
every identifier value seen in the inputs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Iterable

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


def pseudonym(key: str, namespace: str, value: str) -> str:
    """Return the keyed pseudonym of ``value``: HMAC-SHA256, first 16 hex characters.

    Args:
        key: the secret (``PIPELINE_PSEUDONYM_KEY``); at least 8 characters.
        namespace: keeps pseudonyms of different kinds apart (``"patient"``,
            ``"series"``), so a patient id and a series UID never share a pseudonym.
        value: the identifier to hide.
    """
    message = f"{namespace}\x1f{value}".encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]


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
    occur; shorter ones (a PatientID of ``"7"``) only where they are a whole
    ``/``-separated part, because replacing every ``7`` would destroy the path without
    protecting anyone.
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
            self._pattern = re.compile("|".join(re.escape(v) for v in long_values)) if long_values else None
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda match: self._tokens[match.group(0)], text)


def _substring_safe(value: str) -> bool:
    if value.isdigit():
        return len(value) >= _MIN_DIGITS_SUBSTRING
    return len(value) >= _MIN_SUBSTRING
