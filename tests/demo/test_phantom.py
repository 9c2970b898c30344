from __future__ import annotations

import numpy as np
import pytest

from pipeline.demo.phantom import AIR, BONE, DEFAULT_PHANTOM, HU_MAX, HU_MIN, LUNG, SOFT, PhantomParams, render_phantom

SHAPE = (12, 48, 48)


def _render(seed: int, *, with_lesion: bool, noise: float = 0.0, shape=SHAPE, spacing=5.0, params=DEFAULT_PHANTOM):
    anatomy, lesion, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return render_phantom(
        shape=shape,
        pixel_spacing_mm=spacing,
        slice_spacing_mm=5.0,
        with_lesion=with_lesion,
        noise_sd_hu=noise,
        anatomy_rng=anatomy,
        lesion_rng=lesion,
        noise_rng=noise_rng,
        params=params,
    )


@pytest.mark.parametrize("seed", range(6))
def test_lesion_only_in_positive_and_only_inside_its_mask(seed):
    positive = _render(seed, with_lesion=True, noise=15.0)
    negative = _render(seed, with_lesion=False, noise=15.0)
    assert positive.lesion is not None and positive.lesion_mask.any()
    assert negative.lesion is None and not negative.lesion_mask.any()
    outside = ~positive.lesion_mask
    np.testing.assert_array_equal(positive.hu[outside], negative.hu[outside])
    assert not np.array_equal(positive.hu[positive.lesion_mask], negative.hu[positive.lesion_mask])


@pytest.mark.parametrize("seed", range(6))
def test_lesion_stands_out_from_the_tissue_it_sits_in(seed):
    positive = _render(seed, with_lesion=True)
    negative = _render(seed, with_lesion=False)
    lesion = positive.lesion
    centre = tuple(round(c) for c in lesion.centre_index)
    assert positive.lesion_mask[centre]
    host = LUNG if lesion.tissue == "lung" else SOFT
    assert negative.tissue[centre] == host
    gain = positive.hu[centre] - negative.hu[centre]
    assert gain > (500 if lesion.tissue == "lung" else 20)
    assert 3.0 <= lesion.diameter_mm <= 15.0


def test_tissue_values_without_noise():
    params = PhantomParams(calibration_jitter_hu=0.0)
    phantom = _render(1, with_lesion=False, params=params)
    assert np.all(phantom.hu[:, 0, 0] == params.air_hu)
    core = {code: phantom.hu[phantom.tissue == code] for code in (LUNG, SOFT, BONE)}
    assert np.median(core[LUNG]) == pytest.approx(params.lung_hu)
    assert np.median(core[SOFT]) == pytest.approx(params.soft_hu)
    assert core[BONE].max() >= params.marrow_hu
    assert (phantom.tissue == AIR).any() and (phantom.tissue == LUNG).any()


def test_same_streams_give_identical_volumes_and_noise_is_clipped_to_scanner_range():
    first, second = _render(3, with_lesion=True, noise=18.0), _render(3, with_lesion=True, noise=18.0)
    np.testing.assert_array_equal(first.hu, second.hu)
    assert first.hu.dtype == np.float32
    assert first.hu.min() >= HU_MIN and first.hu.max() <= HU_MAX
    other = _render(4, with_lesion=True, noise=18.0)
    assert not np.array_equal(first.hu, other.hu)


def test_noise_sd_is_the_site_sigma():
    quiet = _render(2, with_lesion=False, noise=0.0)
    noisy = _render(2, with_lesion=False, noise=18.0)
    soft = quiet.tissue == SOFT
    assert np.std(noisy.hu[soft] - quiet.hu[soft]) == pytest.approx(18.0, rel=0.1)


def test_lesion_sizes_are_mostly_six_to_fifteen_mm_and_sit_in_both_tissues():
    lesions = [_render(seed, with_lesion=True).lesion for seed in range(40)]
    diameters = np.array([lesion.diameter_mm for lesion in lesions])
    assert diameters.min() >= 3.0 and diameters.max() <= 15.0
    assert np.mean(diameters >= 6.0) >= 0.75
    assert {lesion.tissue for lesion in lesions} == {"lung", "soft"}


def test_field_of_view_too_small_for_a_lesion_is_a_clear_error():
    with pytest.raises(ValueError, match="field of view must hold a .* lesion"):
        _render(0, with_lesion=True, shape=(12, 16, 16), spacing=1.0)
