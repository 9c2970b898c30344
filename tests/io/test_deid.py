from __future__ import annotations

import pydicom

from pipeline.io.deid import Redactor, is_identifier_column, phi_values, pseudonym
from tests.io.dicom_builders import PYDICOM_FILES


def test_pseudonym_is_keyed_deterministic_and_namespaced() -> None:
    first = pseudonym("secret-key-1", "patient", "MRN-1")
    assert first == pseudonym("secret-key-1", "patient", "MRN-1")
    assert first != pseudonym("secret-key-2", "patient", "MRN-1")
    assert first != pseudonym("secret-key-1", "series", "MRN-1")
    assert len(first) == 16 and set(first) <= set("0123456789abcdef")


def test_redactor_replaces_long_values_anywhere_and_short_ones_only_as_whole_parts() -> None:
    redact = Redactor("secret-key-1")
    redact.add(["Doe^Jane", "7", "0001"])
    redact.add(["P123"], token="abcd")
    text = redact("P123/Doe^Jane_scan/7/IM0001.dcm")
    assert "Doe^Jane" not in text and "P123" not in text
    assert text.startswith("abcd/~")
    parts = text.split("/")
    assert parts[2].startswith("~")  # the whole part "7"
    assert parts[3] == "IM0001.dcm"  # short digits are not cut out of names


def test_identifier_columns_are_recognised() -> None:
    assert is_identifier_column("birth_date")
    assert is_identifier_column("PatientName")
    assert is_identifier_column("accession_no")
    assert not is_identifier_column("site")
    assert not is_identifier_column("sex")


def test_phi_values_reads_identifiers_from_a_real_header() -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm", stop_before_pixels=True)
    found = phi_values(ds)
    assert "CompressedSamples^CT1" in found
    assert "1CT1" in found
    assert "JFK IMAGING CENTER" in found
    assert "CompressedSamples" in found  # name parts, so folders named by parts are caught
