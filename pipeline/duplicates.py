"""Find the same image filed under different patients, before the split.

Retrospective exports are full of re-exported copies: the same radiograph as a DICOM
secondary capture and as a PNG, a volume sent twice under two accession numbers. A copy
on each side of the train/test boundary is a leak the patient-level split cannot see,
and it inflates every test metric. Two kinds are found, only between different patients:

* **exact**: the same voxel array (SHA-256 of dtype, shape and the C-order bytes of the
  canonical volume ingest wrote); 2D and 3D alike.
* **near** (2D images only): the same picture after noise, a brightness or contrast
  change, lossy re-compression or a resize. Each image is area-averaged to a 32 x 32
  thumbnail; its 16 x 16 lowest DCT frequencies without the mean are the *signature*.
  A pair is near when ``1 - cosine`` of the signatures is at most
  :data:`NEAR_MAX_DISTANCE`; brightness and contrast drop out (mean removed, length
  normalised). On the 5,030 chest radiographs of PneumoniaMNIST (28 x 28) this flags 3
  of 12.6 million distinct pairs, while noisy (SD 2 and 5 grey levels), brightened,
  contrast-changed, JPEG (quality 75 and 50), resized and 16-level copies are found
  (``benchmarks/duplicate_audit.py`` reruns these measurements).

3D volumes are matched exactly only. A volume's thumbnail is its body outline: the
demo's distinct phantom patients are closer (1 - cosine 0.001 to 0.007) than any noisy
copy of a 2D image, so a near rule would merge whole cohorts.

Up to :data:`ALL_PAIRS_MAX` images every pair's cosine is computed (a few million dot
products). Above that, candidates come from hash buckets, never all pairs: a 63-bit
hash (each of the 8 x 8 lowest coefficients above the cohort's median of it) is cut into
:data:`BUCKET_MAX_BITS` + 1 interleaved bands, and only images that agree exactly on a
band are compared; two hashes within ``BUCKET_MAX_BITS`` bits share a band
(pigeonhole). The work grows with bucket sizes, not with the square of the cohort.

This module imports numpy, and nibabel to read the volumes (no torch): the split stage
uses it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

THUMBNAIL = (32, 32)
SIGNATURE_BLOCK = (16, 16)
"""Lowest DCT frequencies compared by cosine (256, the mean set to zero)."""
HASH_BLOCK = (8, 8)
"""Lowest DCT frequencies hashed for the buckets: 64 less the mean = 63 bits."""
NEAR_MAX_DISTANCE = 0.03
"""Near when 1 - cosine of two signatures is at most this (cosine >= 0.97)."""
ALL_PAIRS_MAX = 2048
BUCKET_MAX_BITS = 6
CANDIDATE_MAX_BITS = 12
"""Bucket mates whose hashes differ in more bits than this are not compared. On
PneumoniaMNIST with planted copies this found the same groups as the all-pairs search;
6 bits lost 1-2% of the noisiest copies."""
_PAIR_CHUNK = 200_000


@dataclass(frozen=True)
class Fingerprint:
    """What the audit keeps of one image: a kilobyte, never the pixels.

    Attributes:
        exact: SHA-256 hex digest of dtype, shape and the C-order bytes.
        signature: unit-length low-frequency DCT coefficients of a 2D image; ``None``
            for a 3D volume or a flat image (matched exactly only).
    """

    exact: str
    signature: np.ndarray | None


@dataclass(frozen=True)
class Match:
    """Two images of different patients found to be the same picture.

    Attributes:
        a, b: positions of the two images in the audited sequence, ``a < b``.
        kind: ``"exact"`` or ``"near"``.
        distance: 1 - cosine of the two signatures (0 when exact).
    """

    a: int
    b: int
    kind: str
    distance: float


def exact_digest(array: np.ndarray) -> str:
    """SHA-256 of ``array``'s dtype (native byte order), shape and C-order bytes."""
    native = array.astype(array.dtype.newbyteorder("="), copy=False)
    digest = hashlib.sha256(f"{native.dtype.str}|{native.shape}|".encode())
    digest.update(memoryview(np.ascontiguousarray(native)).cast("B"))
    return digest.hexdigest()


def fingerprint(array: np.ndarray) -> Fingerprint:
    """The exact digest of an image or volume and, for a 2D image, its signature.

    An array with one slice, ``(X, Y, 1)``, is the 2D image it holds. A colour image, as
    ingest stores it (``(X, Y, 1, 1, 3)``: channels on the fifth axis), is compared by the
    mean of its channels; its exact digest covers every channel.
    """
    image = np.squeeze(array.mean(axis=4, dtype=np.float32) if array.ndim == 5 else array)
    if image.ndim != 2 or min(image.shape) < 2:
        return Fingerprint(exact_digest(array), None)
    values = image.astype(np.float32, copy=False)
    if np.issubdtype(image.dtype, np.floating):
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    thumb = _area_matrix(image.shape[0], THUMBNAIL[0]) @ values @ _area_matrix(image.shape[1], THUMBNAIL[1]).T
    coefficients = _dct_matrix(THUMBNAIL[0]) @ thumb.astype(np.float64) @ _dct_matrix(THUMBNAIL[1]).T
    signature = coefficients[: SIGNATURE_BLOCK[0], : SIGNATURE_BLOCK[1]].ravel().copy()
    signature[0] = 0.0
    norm = float(np.linalg.norm(signature))
    # Relative to the image's scale: float rounding leaves a flat image a tiny norm.
    if norm <= 1e-6 * max(1.0, float(np.abs(thumb).max())):
        return Fingerprint(exact_digest(array), None)
    return Fingerprint(exact_digest(array), (signature / norm).astype(np.float32))


@functools.lru_cache(maxsize=256)
def _area_matrix(n: int, m: int) -> np.ndarray:
    """(m, n) weights averaging n input cells into m output cells by overlap length."""
    edges = np.arange(m + 1) * (n / m)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: ``D @ x`` transforms a length-n vector."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    matrix = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    matrix[0] /= math.sqrt(2.0)
    return matrix


def find_matches(prints: Sequence[Fingerprint], patients: Sequence[str]) -> list[Match]:
    """Every exact and near duplicate pair between different patients.

    Exact copies form classes; each class is linked as a star (every member to its
    first) and only its first member enters the near search, so a picture exported k
    times costs k - 1 rows, not k^2 / 2.

    Args:
        prints: one fingerprint per image.
        patients: the (pseudonymised) patient of each image, same order.

    Returns:
        Matches sorted by (a, b); none within one patient.
    """
    first_of: dict[str, int] = {}
    matches: list[Match] = []
    for i, fp in enumerate(prints):
        j = first_of.setdefault(fp.exact, i)
        if j != i and patients[i] != patients[j]:
            matches.append(Match(j, i, "exact", 0.0))
    members = np.array([i for i in sorted(first_of.values()) if prints[i].signature is not None], dtype=np.int64)
    if len(members) > 1:
        owner = np.unique(np.asarray([patients[i] for i in members], dtype=str), return_inverse=True)[1]
        signatures = np.stack([prints[i].signature for i in members])
        matches.extend(_near_pairs(signatures, members, owner))
    return sorted(matches, key=lambda m: (m.a, m.b))


def _near_pairs(signatures: np.ndarray, index: np.ndarray, owner: np.ndarray) -> list[Match]:
    found: dict[tuple[int, int], Match] = {}
    for a, b in _candidates(signatures):
        keep = owner[a] != owner[b]
        a, b = a[keep], b[keep]
        distance = 1.0 - np.einsum("ij,ij->i", signatures[a], signatures[b])
        near = distance <= NEAR_MAX_DISTANCE
        for x, y, d in zip(index[a[near]], index[b[near]], distance[near]):
            found.setdefault((int(x), int(y)), Match(int(x), int(y), "near", round(max(float(d), 0.0), 4)))
    return list(found.values())


def _candidates(signatures: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs (i < j) worth comparing, in chunks: all in a small cohort, else bucket mates."""
    n = len(signatures)
    if n <= ALL_PAIRS_MAX:
        # A cohort median from a handful of images is noise (two images differ in every
        # bit), and a few million dot products cost less than the hashing.
        i, j = np.triu_indices(n, 1)
        for start in range(0, len(i), _PAIR_CHUNK):
            yield i[start:start + _PAIR_CHUNK], j[start:start + _PAIR_CHUNK]
        return
    bits = perceptual_bits(signatures)
    for mask in _bands():
        for a, b in _band_pairs(bits, mask):
            close = np.bitwise_count(bits[a] ^ bits[b]) <= CANDIDATE_MAX_BITS
            yield a[close], b[close]


def perceptual_bits(signatures: np.ndarray) -> np.ndarray:
    """63-bit hashes (uint64): each hashed coefficient above the cohort's median of it.

    The cohort median, not the image's own, makes every bit split the cohort in half:
    images of one kind (all chest radiographs) share their coarse structure, and bits
    that every image sets alike would fill the buckets with unrelated pairs (on
    PneumoniaMNIST, 4 times as many candidates with the image's own median).
    """
    positions = [r * SIGNATURE_BLOCK[1] + c for r in range(HASH_BLOCK[0]) for c in range(HASH_BLOCK[1])][1:]
    coefficients = signatures[:, positions]
    above = coefficients > np.median(coefficients, axis=0)
    packed = np.packbits(np.pad(above, ((0, 0), (0, 1))), axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8")[:, 0]


def _bands() -> list[np.uint64]:
    """BUCKET_MAX_BITS + 1 masks partitioning the 63 bits; interleaved, so every band
    holds coarse and finer frequencies alike."""
    n = BUCKET_MAX_BITS + 1
    return [np.uint64(sum(1 << bit for bit in range(band, 63, n))) for band in range(n)]


def _band_pairs(bits: np.ndarray, mask: np.uint64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All (i, j), i < j, whose hashes agree exactly on ``mask``, in chunks."""
    keys = bits & mask
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    held = 0
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        members = np.sort(order[start:start + size])
        i, j = np.triu_indices(size, 1)
        firsts.append(members[i])
        seconds.append(members[j])
        held += len(i)
        if held >= _PAIR_CHUNK:
            yield np.concatenate(firsts), np.concatenate(seconds)
            firsts, seconds, held = [], [], 0
    if firsts:
        yield np.concatenate(firsts), np.concatenate(seconds)


@dataclass(frozen=True)
class Audit:
    """The duplicates of one index, linked up by patient.

    Attributes:
        matches: every exact and near pair between different patients.
        series: ``(series_key, patient_id)`` of each audited image, matching ``Match.a/b``.
        groups: patients linked by a chain of matches, each sorted, two or more each;
            sorted by first patient.
        unread: ``(series_key, reason)`` of volumes that could not be read; they are
            left out of the audit, not out of the split.
    """

    matches: tuple[Match, ...]
    series: tuple[tuple[str, str], ...]
    groups: tuple[tuple[str, ...], ...]
    unread: tuple[tuple[str, str], ...]

    def group_of(self) -> dict[str, int]:
        """Patient -> 1-based group number, for the patients in a group."""
        return {pid: n for n, group in enumerate(self.groups, 1) for pid in group}

    def table(self) -> list[dict[str, object]]:
        """Rows of ``duplicates.csv``: one per match, pseudonymised keys only."""
        number = self.group_of()
        return [
            {"group": number[self.series[m.a][1]], "kind": m.kind, "distance": f"{m.distance:.4f}",
             "patient_a": self.series[m.a][1], "series_a": self.series[m.a][0],
             "patient_b": self.series[m.b][1], "series_b": self.series[m.b][0]}
            for m in sorted(self.matches, key=lambda m: (number[self.series[m.a][1]], m.a, m.b))
        ]




def audit_index(index_csv: str | Path, rows: Sequence[Mapping[str, str]]) -> Audit:
    """Read every volume the index lists and find duplicates between patients.

    Args:
        index_csv: the index; ``image_path`` is relative to its folder.
        rows: its rows (``series_key``, ``patient_id``, ``image_path``).
    """
    folder = Path(index_csv).parent
    prints, series, unread = [], [], []
    for row in rows:
        try:
            array = _read_volume(folder / row["image_path"])
        except (OSError, ValueError, EOFError, zlib.error, ImageFileError) as error:
            # The split does not need pixels: a volume ingest wrote but that is gone or
            # damaged now is preprocess's to exclude, with its reason; here it is counted.
            unread.append((row["series_key"], f"{type(error).__name__}: {error}"))
            continue
        prints.append(fingerprint(array))
        series.append((row["series_key"], row["patient_id"]))
    matches = find_matches(prints, [pid for _, pid in series])
    return Audit(tuple(matches), tuple(series), link_patients(matches, series), tuple(unread))


def _read_volume(path: Path) -> np.ndarray:
    """The stored voxel array of a NIfTI-1 file, before any ``scl_slope``: what ingest wrote.

    nibabel parses the header; the voxels are read straight from the (gzip) stream,
    which costs a fifth of ``nibabel.load`` on small images (0.8 against 4 ms on a 28 x
    28 image), the difference between a 10,000-image audit in 12 s and in 45 s.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as stream:
        header = nib.Nifti1Header.from_fileobj(stream)
        shape = header.get_data_shape()
        dtype = header.get_data_dtype()
        offset = int(header["vox_offset"])
        stream.read(max(offset - stream.tell(), 0))
        size = math.prod(shape) * dtype.itemsize
        data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"NIfTI file must hold the {size} bytes of voxels its header declares; got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F")


def link_patients(matches: Sequence[Match], series: Sequence[tuple[str, str]]) -> tuple[tuple[str, ...], ...]:
    """Connected groups of patients (union-find), each sorted, in order of first patient."""
    parent: dict[str, str] = {}

    def root(pid: str) -> str:
        parent.setdefault(pid, pid)
        while parent[pid] != pid:
            parent[pid] = parent[parent[pid]]
            pid = parent[pid]
        return pid

    for m in matches:
        a, b = root(series[m.a][1]), root(series[m.b][1])
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for pid in parent:
        groups.setdefault(root(pid), []).append(pid)
    return tuple(sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1))
