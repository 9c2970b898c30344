"""A numerical chest phantom in Hounsfield units, with or without a lesion.

The demo cohort must be learnable by a small 3D network trained from scratch on about
70 patients, yet not so easy that any bright voxel gives the answer away. So every
patient, lesion or not, carries the same distractors (ribs, spine, lung vessels that run
through many slices, per-site noise), and the lesion is a compact blob: high contrast
in a lung, modest contrast (+50 to +90 HU) in soft tissue. All sizes of anatomy scale
with the field of view; lesion sizes are absolute (mm), drawn so that most are 6-15 mm
and survive resampling to the pipeline's ~5 mm voxels.

Only ``+ - * /`` and ``sqrt`` touch the voxels (no ``exp`` or trigonometry, whose SIMD
implementations differ between CPUs), so the same seed gives the same bits everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline.errors import ConfigError

#: Tissue codes of :attr:`Phantom.tissue`.
AIR, FAT, SOFT, LUNG, BONE, VESSEL, LESION = range(7)

#: Scanner range of 12-bit CT storage with intercept -1024.
HU_MIN, HU_MAX = -1024.0, 3071.0


@dataclass(frozen=True)
class PhantomParams:
    """Everything that shapes the phantom; tune learnability here.

    Attributes:
        air_hu, fat_hu, soft_hu, lung_hu, cortical_hu, marrow_hu, vessel_hu: tissue
            values, HU.
        body_semi_axes: body ellipse half-width (left-right) and half-depth
            (anterior-posterior) as fractions of half the field of view.
        body_jitter: relative per-patient jitter of those semi-axes.
        body_shift: per-patient shift of the body centre, fraction of half the FOV.
        fat_mm: range of subcutaneous fat thickness, mm.
        muscle_mm: range of chest-wall muscle between fat and ribs, mm.
        rib_mm: rib thickness (in plane) and height (along z), mm.
        rib_period_mm: distance between ribs along z, mm.
        lung_base: range of the lung base height as a fraction of the z extent; below it
            the abdomen is soft tissue.
        vessels_per_lung: vessel cylinders in each lung (distractors for lung lesions).
        vessel_diameter_mm: range of vessel diameters, mm.
        lesion_diameter_mm: usual lesion diameters, mm.
        small_lesion_fraction: share of lesions drawn from ``small_lesion_diameter_mm``
            instead; these may vanish at 5 mm voxels and keep the task from being easy.
        small_lesion_diameter_mm: range of small lesion diameters, mm.
        lesion_elongation: per-axis relative jitter of the lesion's semi-axes.
        lung_lesion_fraction: share of lesions placed in a lung (the rest in soft tissue).
        lung_lesion_hu: range of a lung nodule's value, HU (solid nodule).
        soft_lesion_contrast_hu: range of a soft-tissue lesion's value above ``soft_hu``.
        lesion_texture_hu: SD of the lesion's own heterogeneity, HU.
        lesion_margin_mm: minimal distance from the lesion edge to another tissue, mm.
        calibration_jitter_hu: SD of a per-patient HU offset of all tissue, HU.
    """

    air_hu: float = -1000.0
    fat_hu: float = -100.0
    soft_hu: float = 40.0
    lung_hu: float = -850.0
    cortical_hu: float = 800.0
    marrow_hu: float = 250.0
    vessel_hu: float = 40.0
    body_semi_axes: tuple[float, float] = (0.86, 0.62)
    body_jitter: float = 0.06
    body_shift: float = 0.03
    fat_mm: tuple[float, float] = (6.0, 20.0)
    muscle_mm: tuple[float, float] = (6.0, 12.0)
    rib_mm: tuple[float, float] = (6.0, 12.0)
    rib_period_mm: float = 25.0
    lung_base: tuple[float, float] = (0.05, 0.2)
    vessels_per_lung: int = 4
    vessel_diameter_mm: tuple[float, float] = (1.0, 2.5)
    lesion_diameter_mm: tuple[float, float] = (6.0, 15.0)
    small_lesion_fraction: float = 0.1
    small_lesion_diameter_mm: tuple[float, float] = (3.0, 6.0)
    lesion_elongation: float = 0.15
    lung_lesion_fraction: float = 0.6
    lung_lesion_hu: tuple[float, float] = (-50.0, 60.0)
    soft_lesion_contrast_hu: tuple[float, float] = (50.0, 90.0)
    lesion_texture_hu: float = 10.0
    lesion_margin_mm: float = 2.0
    calibration_jitter_hu: float = 4.0


DEFAULT_PHANTOM = PhantomParams()


@dataclass(frozen=True)
class Lesion:
    """One lesion as drawn.

    Attributes:
        tissue: ``"lung"`` or ``"soft"``, where it was placed.
        centre_index: centre as fractional voxel index ``(k, r, c)``.
        semi_axes_mm: semi-axes along ``(z, y, x)``, mm.
        diameter_mm: nominal diameter before elongation, mm.
        hu: mean value of the lesion, HU.
    """

    tissue: str
    centre_index: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    diameter_mm: float
    hu: float


@dataclass(frozen=True)
class Phantom:
    """A rendered phantom.

    Attributes:
        hu: ``(K, R, C)`` float32 HU with noise, clipped to ``[HU_MIN, HU_MAX]``.
        tissue: ``(K, R, C)`` uint8 tissue code of each voxel (before noise).
        lesion_mask: ``(K, R, C)`` bool, voxels the lesion touches (any partial volume).
        lesion: the lesion drawn, or ``None``.
    """

    hu: np.ndarray
    tissue: np.ndarray
    lesion_mask: np.ndarray
    lesion: Lesion | None


def render_phantom(
    *,
    shape: tuple[int, int, int],
    pixel_spacing_mm: float,
    slice_spacing_mm: float,
    with_lesion: bool,
    noise_sd_hu: float,
    anatomy_rng: np.random.Generator,
    lesion_rng: np.random.Generator,
    noise_rng: np.random.Generator,
    params: PhantomParams = DEFAULT_PHANTOM,
) -> Phantom:
    """Draw one patient's chest: anatomy, an optional lesion, then scanner noise.

    The three generators are separate streams so a patient's anatomy and noise do not
    depend on whether it has a lesion: a positive and a negative patient built from the
    same streams differ only inside the lesion.

    Args:
        shape: ``(K, R, C)`` = (slices, rows, columns).
        pixel_spacing_mm: in-plane voxel size, mm.
        slice_spacing_mm: slice spacing, mm.
        with_lesion: draw a lesion.
        noise_sd_hu: SD of the white Gaussian noise added last, HU (per site).
        anatomy_rng, lesion_rng, noise_rng: independent random streams.
        params: phantom constants.

    Returns:
        The phantom; ``lesion_mask.any()`` is true exactly when ``with_lesion`` is.

    Raises:
        ValueError: the field of view is too small to hold a lesion away from other tissue.
    """
    n_slices, rows, cols = shape
    dz, dxy = float(slice_spacing_mm), float(pixel_spacing_mm)
    half_fov = 0.5 * dxy * cols
    x = ((np.arange(cols, dtype=np.float32) - (cols - 1) / 2) * dxy).reshape(1, 1, cols)
    y = ((np.arange(rows, dtype=np.float32) - (rows - 1) / 2) * dxy).reshape(1, rows, 1)
    z = (np.arange(n_slices, dtype=np.float32) * dz).reshape(n_slices, 1, 1)
    z_extent = dz * n_slices
    p = params
    u = anatomy_rng.uniform

    a = half_fov * p.body_semi_axes[0] * (1 + u(-p.body_jitter, p.body_jitter))
    b = half_fov * p.body_semi_axes[1] * (1 + u(-p.body_jitter, p.body_jitter))
    cx, cy = (u(-p.body_shift, p.body_shift) * half_fov for _ in range(2))
    fat = u(*p.fat_mm)
    muscle = u(*p.muscle_mm)
    calibration = anatomy_rng.normal(0.0, p.calibration_jitter_hu)

    hu = np.full(shape, p.air_hu, dtype=np.float32)
    tissue = np.zeros(shape, dtype=np.uint8)

    def paint(fraction: np.ndarray, value: float, code: int) -> None:
        fraction = np.broadcast_to(fraction, shape)
        hu[...] += fraction * (np.float32(value) - hu)
        tissue[fraction >= 0.5] = code

    paint(_ellipse(x, y, cx, cy, a, b, dxy), p.fat_hu, FAT)
    paint(_ellipse(x, y, cx, cy, a - fat, b - fat, dxy), p.soft_hu, SOFT)

    # Lungs stay inside the rib cage; the left one is smaller, pushed in by the heart,
    # so a flipped left-right axis is visible. Below the lung base lies the abdomen.
    rib_a, rib_b = a - fat - muscle, b - fat - muscle
    inner_a, inner_b = rib_a - p.rib_mm[0] - 2 * dxy, rib_b - p.rib_mm[0] - 2 * dxy
    lung_ramp_mm = 25.0
    base = u(*p.lung_base) * z_extent
    scale = np.sqrt(np.clip((z - base) / lung_ramp_mm, 0.0, 1.0))
    lungs = []
    for side, (fx, fy, sa, sb) in ((-1, (0.42, -0.05, 0.30, 0.62)), (1, (0.46, -0.03, 0.26, 0.58))):
        offset_x = fx * a * (1 + u(-0.04, 0.04))
        lx, ly = cx + side * offset_x, cy + fy * b
        la = min(sa * a * (1 + u(-0.05, 0.05)), inner_a - offset_x, offset_x - 0.08 * a)
        lb = min(sb * b * (1 + u(-0.05, 0.05)), inner_b - abs(fy) * b)
        lungs.append((lx, ly))
        paint(_ellipse(x, y, lx, ly, la * scale + 1e-3, lb * scale + 1e-3, dxy), p.lung_hu, LUNG)
    lung_region = tissue == LUNG

    shell = _ellipse(x, y, cx, cy, rib_a, rib_b, dxy) - _ellipse(
        x, y, cx, cy, rib_a - p.rib_mm[0], rib_b - p.rib_mm[0], dxy
    )
    rib_phase = u(0.0, p.rib_period_mm)
    in_rib = (np.mod(z + rib_phase, p.rib_period_mm) < p.rib_mm[1]).astype(np.float32)
    paint(shell * in_rib, p.cortical_hu, BONE)

    spine_r = 0.11 * a
    sx, sy = cx, cy + b - fat - muscle - spine_r
    paint(_ellipse(x, y, sx, sy, spine_r, spine_r, dxy), p.cortical_hu, BONE)
    paint(_ellipse(x, y, sx, sy, spine_r - 3.0, spine_r - 3.0, dxy), p.marrow_hu, BONE)

    vessels = np.zeros(shape, dtype=np.float32)
    for lx, ly in lungs:
        for _ in range(p.vessels_per_lung):
            r = 0.5 * u(*p.vessel_diameter_mm)
            px = lx + u(-0.6, 0.6) * 0.25 * a
            py = ly + u(-0.6, 0.6) * 0.55 * b
            slope_x, slope_y = u(-0.3, 0.3), u(-0.3, 0.3)
            z0 = u(0.0, z_extent)
            dist = np.sqrt((x - (px + slope_x * (z - z0))) ** 2 + (y - (py + slope_y * (z - z0))) ** 2)
            np.maximum(vessels, np.clip((r - dist) / dxy + 0.5, 0.0, 1.0), out=vessels)
    vessels *= lung_region
    paint(vessels, p.vessel_hu, VESSEL)

    hu += np.float32(calibration) * (tissue != AIR)

    lesion = None
    lesion_mask = np.zeros(shape, dtype=bool)
    if with_lesion:
        lesion, fraction, box = _draw_lesion(tissue, dz, dxy, lesion_rng, p)
        sub = hu[box]
        texture = lesion_rng.normal(0.0, p.lesion_texture_hu, size=sub.shape).astype(np.float32)
        sub += fraction * (np.float32(lesion.hu) + texture - sub)
        tissue[box][fraction >= 0.5] = LESION
        lesion_mask[box] = fraction > 0

    hu += noise_rng.standard_normal(shape, dtype=np.float32) * np.float32(noise_sd_hu)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    return Phantom(hu=hu, tissue=tissue, lesion_mask=lesion_mask, lesion=lesion)


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a, b, edge_mm: float) -> np.ndarray:
    """Partial-volume fraction in [0, 1] of an axis-aligned ellipse, ramped over ``edge_mm``.

    ``(q - 1) * min(a, b)`` approximates the signed distance to the outline, which is
    enough for a soft edge one pixel wide; ``a`` and ``b`` may vary along z.
    """
    q = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
    return np.clip(0.5 - (q - 1.0) * np.minimum(a, b) / edge_mm, 0.0, 1.0).astype(np.float32)


def _draw_lesion(
    tissue: np.ndarray, dz: float, dxy: float, rng: np.random.Generator, p: PhantomParams
) -> tuple[Lesion, np.ndarray, tuple[slice, slice, slice]]:
    """Place an ellipsoid lesion inside a lung or soft tissue, away from other tissue.

    Returns the lesion, its partial-volume fraction ``(k, r, c)`` over a bounding box,
    and that box as slices into the volume. The fraction is the share of each voxel
    inside the ellipsoid, found by supersampling, so thick slices blur a small lesion as
    a scanner would.
    """
    small = rng.random() < p.small_lesion_fraction
    diameter = rng.uniform(*(p.small_lesion_diameter_mm if small else p.lesion_diameter_mm))
    semi = tuple(0.5 * diameter * (1 + rng.uniform(-p.lesion_elongation, p.lesion_elongation)) for _ in range(3))
    in_lung = rng.random() < p.lung_lesion_fraction
    order = ("lung", "soft") if in_lung else ("soft", "lung")

    n_slices = tissue.shape[0]
    z_margin = math.ceil(semi[0] / dz) + 1
    for place in order:
        region = tissue == (LUNG if place == "lung" else SOFT)
        region[:z_margin] = False
        region[n_slices - z_margin :] = False
        depth = ndimage.distance_transform_edt(region, sampling=(dz, dxy, dxy))
        candidates = np.flatnonzero(depth >= max(semi) + p.lesion_margin_mm)
        if candidates.size:
            break
    else:
        raise ConfigError(
            f"the phantom's field of view must hold a {2 * max(semi):.1f} mm lesion inside a lung or soft "
            f"tissue; got a volume of {tissue.shape} voxels at {dxy} mm x {dz} mm with no room. "
            "Raise 'demo.matrix' or 'demo.pixel_spacing_mm'."
        )
    centre_flat = candidates[rng.integers(candidates.size)]
    centre = tuple(float(i) + rng.uniform(-0.5, 0.5) for i in np.unravel_index(centre_flat, tissue.shape))
    if place == "lung":
        value = rng.uniform(*p.lung_lesion_hu)
    else:
        value = p.soft_hu + rng.uniform(*p.soft_lesion_contrast_hu)

    spacing = (dz, dxy, dxy)
    box = tuple(
        slice(max(0, math.floor(c - s / d) - 1), min(n, math.ceil(c + s / d) + 2))
        for c, s, d, n in zip(centre, semi, spacing, tissue.shape)
    )
    axes = []
    for c, s, d, sl in zip(centre, semi, spacing, box):
        n_sub = max(2, math.ceil(d / 0.5))
        offsets = (np.arange(n_sub, dtype=np.float64) + 0.5) / n_sub - 0.5
        positions = (np.arange(sl.start, sl.stop)[:, None] + offsets[None, :] - c) * d / s
        axes.append(positions)
    pz, py, px = axes
    q = pz[:, None, None, :, None, None] ** 2 + py[None, :, None, None, :, None] ** 2
    q = q + px[None, None, :, None, None, :] ** 2
    fraction = (q <= 1.0).mean(axis=(3, 4, 5)).astype(np.float32)

    lesion = Lesion(
        tissue=place,
        centre_index=centre,
        semi_axes_mm=semi,
        diameter_mm=float(diameter),
        hu=float(value),
    )
    return lesion, fraction, box
