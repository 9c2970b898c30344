"""Time the split stage's duplicate audit on 10,000 2D images, and measure its errors.

The images are PneumoniaMNIST's 5,030 chest radiographs (28 x 28; --npz) plus 4,970
planted copies of randomly chosen ones: noise SD 2 and 5 grey levels, +20 brightness,
contrast x0.8, JPEG quality 75 and 50 (Pillow, when installed), 2x resize, 16 grey
levels. All are written as NIfTI with the pipeline's own writer and an index.csv, each
image under its own patient; the timed part is ``audit_index``: reading every file,
fingerprinting and matching. Printed: the time, the planted copies found per kind
(copy and source in one group), and the flags among the distinct originals (pairs not
byte-identical: an upper bound on false positives, since the set has real copies).

Usage: ``python benchmarks/duplicate_audit.py [--npz PATH] [--n 10000] [--workdir DIR]``;
the last line is JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.duplicates import audit_index, exact_digest
from pipeline.io.nifti_write import write_canonical
from pipeline.tables import read_rows, write_rows


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.array(Image.open(buffer))


def _copies(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray | None]:
    f = image.astype(float)
    return {
        "noise2": np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8),
        "noise5": np.clip(f + rng.normal(0, 5, f.shape), 0, 255).astype(np.uint8),
        "bright20": np.clip(f + 20, 0, 255).astype(np.uint8),
        "contrast08": np.clip(f * 0.8 + 10, 0, 255).astype(np.uint8),
        "jpeg75": _jpeg(image, 75),
        "jpeg50": _jpeg(image, 50),
        "resize2x": np.repeat(np.repeat(image, 2, axis=0), 2, axis=1),
        "levels16": (image // 16 * 16).astype(np.uint8),
    }


def build(npz: Path, n: int, folder: Path, seed: int = 0) -> tuple[Path, dict[int, tuple[int, str]], int]:
    data = np.load(npz)
    originals = np.concatenate([data[k] for k in ("train_images", "val_images", "test_images")])
    rng = np.random.default_rng(seed)
    images = list(originals[: min(n, len(originals))])
    planted: dict[int, tuple[int, str]] = {}
    while len(images) < n:
        source = int(rng.integers(len(originals)))
        for kind, copy in _copies(originals[source], rng).items():
            if copy is not None and len(images) < n:
                planted[len(images)] = (source, kind)
                images.append(copy)
    rows = []
    for i, image in enumerate(images):
        write_canonical(image, np.eye(4), folder / "volumes" / f"s{i:05d}.nii.gz")
        rows.append({"series_key": f"s{i:05d}", "patient_id": f"p{i:05d}", "label": 0,
                     "image_path": f"volumes/s{i:05d}.nii.gz"})
    write_rows(folder / "index.csv", rows, ("series_key", "patient_id", "label", "image_path"))
    return folder / "index.csv", planted, len(originals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--npz", default="/work/shared/data/pneumoniamnist.npz")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        index, planted, n_originals = build(Path(args.npz), args.n, Path(tmp))
        rows = read_rows(index)
        start = time.perf_counter()
        audit = audit_index(index, rows)
        seconds = time.perf_counter() - start
        originals = np.load(args.npz)
        pixels = np.concatenate([originals[k] for k in ("train_images", "val_images", "test_images")])
    group = {pid: g for g, members in enumerate(audit.groups) for pid in members}
    found: dict[str, list[bool]] = {}
    for i, (source, kind) in planted.items():
        a, b = f"p{i:05d}", f"p{source:05d}"
        found.setdefault(kind, []).append(a in group and group.get(a) == group.get(b))
    distinct = [m for m in audit.matches if m.b < n_originals]
    false_flags = [m for m in distinct if exact_digest(pixels[m.a]) != exact_digest(pixels[m.b])]
    result = {
        "images": len(rows), "seconds": round(seconds, 2), "groups": len(audit.groups),
        "planted_found": {k: f"{sum(v)}/{len(v)}" for k, v in found.items()},
        "distinct_originals": n_originals,
        "byte_identical_pairs_among_originals": len(distinct) - len(false_flags),
        "near_flags_among_distinct_originals": len(false_flags),
        "near_flag_distances": sorted(m.distance for m in false_flags),
    }
    print(f"duplicate audit: {len(rows)} images read and audited in {seconds:.1f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
