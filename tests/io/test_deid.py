from __future__ import annotations

import os

import pydicom
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.io.deid import SAFE_NAMES, Redactor, is_identifier_column, path_token, phi_values, pseudonym
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


def test_a_digit_identifier_is_not_cut_out_of_a_longer_number() -> None:
    redact = Redactor("secret-key-1")
    redact.add(["100000000"])  # an all-digit PatientID
    reason = "Python integer 1000000000000000000 out of bounds for int32"
    assert redact(reason) == reason
    assert "100000000" not in redact("id 100000000 in MRN100000000.dcm")
    assert redact("id 100000000.").startswith("id ~")


def test_pseudonym_and_path_token_take_names_that_are_not_utf8() -> None:
    name = b"M\xfcller/M\xfcller_01.dcm".decode("utf-8", "surrogateescape")
    token = path_token("secret-key-1", name)
    assert token == path_token("secret-key-1", name)
    assert pseudonym("secret-key-1", "path", name) != pseudonym("secret-key-1", "path", "Müller/Müller_01.dcm")
    assert token.isascii() and token.endswith(".dcm") and "ller" not in token


def test_path_token_replaces_every_name_and_keeps_safe_extensions_and_names() -> None:
    token = path_token("secret-key-1", "Doe_Jane_MRN11112222/DICOM/Doe_Jane_00.dcm")
    folder, dicom, file = token.split("/")
    assert folder.startswith("~") and dicom == "DICOM" and file.startswith("~") and file.endswith(".dcm")
    assert "Doe" not in token and "11112222" not in token
    assert path_token("secret-key-1", "a/x.NII.GZ").endswith(".NII.GZ")
    assert "." not in path_token("secret-key-1", "Doe.Jane")  # not a known extension: all hashed
    assert token.split("/")[0] == path_token("secret-key-1", "Doe_Jane_MRN11112222/other.dcm").split("/")[0]


_NAMES = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(_NAMES, min_size=1, max_size=4))
def test_path_tokens_never_contain_a_name_part(parts: list[str]) -> None:
    token = path_token("property-key", "/".join(parts))
    assert token.count("/") == len(parts) - 1
    for part, written in zip(parts, token.split("/")):
        assert written == part if part in SAFE_NAMES else written.startswith("~")
        if part not in SAFE_NAMES and len(part) >= 3 and not set(part) <= set("0123456789abcdef.~"):
            assert part not in written


_VALUE = st.text(st.characters(categories=("L", "N"), max_codepoint=0x24F), min_size=6, max_size=20)


@settings(max_examples=200, deadline=None)
@given(value=_VALUE, before=st.text(max_size=20), after=st.text(max_size=20))
def test_a_registered_value_standing_alone_never_survives_redaction(value: str, before: str, after: str) -> None:
    redact = Redactor("property-key")
    redact.add([value])
    # A separator on each side: the value stands alone, as in a reason or a path part.
    text = redact(f"{before} {value} {after}")
    assert f" {value} " not in text


@settings(max_examples=200, deadline=None)
@given(value=st.from_regex(r"[1-9][0-9]{5,12}", fullmatch=True), left=st.integers(1, 9), right=st.integers(0, 9))
def test_a_digit_value_inside_a_longer_number_is_left_alone(value: str, left: int, right: int) -> None:
    redact = Redactor("property-key")
    redact.add([value])
    number = f"{left}{value}{right}"
    assert redact(f"integer {number} out of bounds") == f"integer {number} out of bounds"


@settings(max_examples=100, deadline=None)
@given(key=st.text(min_size=8, max_size=40), value=st.text(max_size=50))
def test_pseudonym_is_16_hex_for_any_text(key: str, value: str) -> None:
    token = pseudonym(key, "patient", value)
    assert len(token) == 16 and set(token) <= set("0123456789abcdef")
    assert token == pseudonym(key, "patient", value)


def test_path_tokens_of_a_run_equal_path_token_for_every_path() -> None:
    from pipeline.io.deid import PathTokens

    tokens = PathTokens("path-tokens-key")
    paths = ["a/b/c.dcm", "a/b/d.dcm", "a/b", "b/a/c.dcm", "c.dcm", "DICOMDIR", "x/DICOMDIR", "x/y.nii.gz", "",
             "a//b.dcm", "Doe^John/20240101/IM001", os.fsdecode(b"M\xfcller/x.dcm"), "a/b/c.dcm"]
    for path in paths:
        assert tokens(path) == path_token("path-tokens-key", path), path
