"""Use a trained model on new images: :func:`load_classifier` and :class:`Classifier`.

::

    from pipeline import load_classifier
    clf = load_classifier("models/best.ckpt", threshold_file="reports/threshold.json")
    r = clf("path/to/study")          # a DICOM folder, a NIfTI file, one DICOM, PNG, JPEG or TIFF file
    r.score, r.positive               # probability, decision at the val-chosen threshold
    results = clf(["a/", "b.nii.gz"])  # batched

The model file alone is enough (see :mod:`pipeline.modelfile`): the network is rebuilt
from its recorded layout, and every input goes through ingest's reading code and the very
``deterministic_transforms`` that made the training tensors, with the settings recorded
at training, then the same float16 rounding the training cache applied.
"""

from __future__ import annotations

import inspect
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from pipeline.errors import PipelineInputError
from pipeline.modelfile import ModelFile, ModelFileError, check_state, read_model_file
from pipeline.models.network import NetworkLayout
from pipeline.models.network import build_network as build_resnet
from pipeline.models.sources import Normalization
from pipeline.schema import ThresholdRecord
from pipeline.transforms import deterministic_transforms

DEFAULT_BATCH = 8


@dataclass
class Prediction:
    """The result for one input series.

    Attributes:
        key: the input as given (path as typed), or the patient pseudonym for a manifest row.
        score: probability of the positive class, or None when the series was skipped.
        positive: ``score >= threshold``; None when skipped or no threshold is known.
        reason: why the series was skipped ("" when scored).
        series_key: ingest's series key (keyed hash), "" when no series was built.
        saliency: Grad-CAM map (``*roi``, in [0, 1]) on the model's input grid, when asked for.
        saliency_layer: the ResNet stage the map comes from.
        image: the prepared input (``channels, *roi``), kept when saliency is asked for.
        affine: voxel-to-world (RAS, mm) affine of ``image`` and ``saliency``.
    """

    key: str
    score: float | None = None
    positive: bool | None = None
    reason: str = ""
    series_key: str = ""
    saliency: np.ndarray | None = None
    saliency_layer: str = ""
    image: np.ndarray | None = None
    affine: np.ndarray | None = None

    def save_overlay(self, path: str | Path) -> Path:
        """Write a PNG of the input (its slice where the map peaks, in 3D) with the map over it.

        Raises:
            PipelineInputError: no map (the classifier was not called with ``saliency=True``).
        """
        from pipeline.explain import save_overlay

        if self.saliency is None or self.image is None:
            raise PipelineInputError(
                f"prediction {self.key!r} must hold a saliency map to draw an overlay; it has none "
                f"({self.reason or 'saliency was not asked for'}). Call the classifier with saliency=True."
            )
        return save_overlay(path, self.image, self.saliency)


class Classifier:
    """A trained model with its preprocessing; call it on paths or prepared tensors.

    Args:
        model_file: checked contents of the checkpoint (:func:`read_model_file`).
        threshold: decision threshold on the score; None leaves ``positive`` unset.
        device: ``cuda``, ``cpu`` or None (the GPU when there is one).
    """

    def __init__(self, model_file: ModelFile, *, threshold: float | None = None, device: str | None = None) -> None:
        self.meta = model_file.meta
        self.threshold = threshold
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.network = build_network(self.meta["network"])
        check_state("model", self.network.state_dict(), model_file.state)
        self.network.load_state_dict(model_file.state, strict=True)
        self.network.to(self.device).eval()
        norm = self.meta["normalization"]
        self.normalization = None if norm is None else Normalization(norm["kind"], tuple(norm["mean"]), tuple(norm["std"]))
        self.preprocess = self.meta["preprocess"]
        self._pipelines: dict[str, Any] = {}

    @property
    def spatial_dims(self) -> int:
        return int(self.meta["network"]["spatial_dims"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one prepared input, ``(channels, *roi)``."""
        return (int(self.meta["network"]["in_channels"]), *(int(r) for r in self.preprocess["roi"]))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B,) for prepared images (B, C, *roi) in [0, 1], normalised as in training."""
        x = x.to(self.device, torch.float32)
        return self.network(x if self.normalization is None else self.normalization.apply(x)).squeeze(-1)

    @torch.no_grad()
    def scores(self, x: torch.Tensor) -> np.ndarray:
        """Probabilities (B,) as float64; the sigmoid runs in float64 as in training."""
        return torch.sigmoid(self.logits(x).double()).cpu().numpy()

    def decide(self, score: float | None) -> bool | None:
        if score is None or self.threshold is None:
            return None
        return bool(score >= self.threshold)

    def prepare(self, image_path: str | Path, modality: str, shape: str) -> np.ndarray:
        """One canonical volume (a NIfTI written by ingest) -> (channels, *roi) float32 as the cache holds it.

        The channels are the model's (``in_channels`` recorded at training): a colour
        image for a grey model is turned grey, a grey one for an RGB model repeated, as
        preprocess did (:class:`pipeline.transforms.ImageChannelsd`).
        """
        return self.prepare_with_affine(image_path, modality, shape)[0]

    def prepare_with_affine(self, image_path: str | Path, modality: str, shape: str) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`prepare`, and the prepared image's voxel-to-world affine (RAS, mm).

        Args:
            image_path: the volume.
            modality: its DICOM modality ("" for NIfTI taken as other).
            shape: its shape as ingest's index writes it (``512x512x40``).

        Raises:
            PipelineInputError: a 2D image for a 3D model, or a transform failure.
        """
        # The rule preprocess applies before transforming (build_cache's exclusion).
        if self.spatial_dims == 3 and len(shape.split("x")) < 3:
            raise PipelineInputError(
                f"image must be 3D for this 3D model; got a 2D image (shape {shape}). "
                "Use a model trained with preprocess.spatial_dims: 2."
            )
        modality = modality or "OT"
        if modality not in self._pipelines:
            self._pipelines[modality] = deterministic_transforms(**self._transform_args(modality))
        try:
            out = self._pipelines[modality]({"image": str(image_path)})["image"]
        except Exception as error:  # noqa: BLE001 - recorded as the series' reason, never fatal
            raise PipelineInputError(f"transform failed: {error!s:.300}") from None
        image = np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=np.float32)
        if image.shape != self.input_shape:
            raise PipelineInputError(f"transformed image must have shape {self.input_shape}; got {image.shape}.")
        affine = np.asarray(out.affine, dtype=np.float64) if hasattr(out, "affine") else np.eye(len(image.shape))
        # The model learnt from the float16 cache; round the same way so scores match.
        return image.astype(self.preprocess["dtype"]).astype(np.float32), affine

    def _transform_args(self, modality: str) -> dict[str, Any]:
        """Arguments of ``deterministic_transforms`` from the recorded preprocess settings."""
        args: dict[str, Any] = {}
        for name, parameter in inspect.signature(deterministic_transforms).parameters.items():
            if name == "modality":
                args[name] = modality
            elif name == "intensity" and isinstance(self.preprocess.get(name), dict):
                # recorded per modality by preprocess; another modality gets the setting
                args[name] = self.preprocess[name].get(modality, self.preprocess.get("intensity_setting", "auto"))
            elif name == "value_range":
                found = self.preprocess.get("intensity_range", {}).get(modality)
                args[name] = tuple(found) if found is not None else None
            elif name in self.preprocess:
                value = self.preprocess[name]
                args[name] = tuple(value) if isinstance(value, list) else value
            elif parameter.default is inspect.Parameter.empty:
                raise ModelFileError(
                    f"model file's preprocess settings must hold {name!r}, which this version's transforms need; "
                    f"they hold {sorted(self.preprocess)}. Retrain with this version (dvc repro -f train)."
                )
        return args

    def __call__(self, inputs: str | Path | Sequence[str | Path], *, batch_size: int = DEFAULT_BATCH,
                 progress: bool | None = None, saliency: bool = False,
                 layer: str = "auto") -> Prediction | list[Prediction]:
        """Score one input (returns a :class:`Prediction`) or several (returns a list).

        An input is a DICOM folder (series assembled by ingest's code), a NIfTI file, a
        single DICOM file or a PNG, JPEG or TIFF file; a bad input gives a Prediction with
        its ``reason``, never an error.
        With ``saliency`` each result also holds its Grad-CAM map from ``layer`` (see
        :func:`pipeline.explain.choose_layer`).
        """
        from pipeline.predict_inputs import cases_from_paths, ingest_settings, scoring_session

        single = isinstance(inputs, (str, Path))
        paths = [inputs] if single else list(inputs)
        with scoring_session() as session:
            config = ingest_settings(None, need_key=False, recorded=self.preprocess.get("ingest"))
            cases = cases_from_paths(paths, session, config)
            results = self.score_cases(cases, batch_size=batch_size, progress=progress, saliency=saliency,
                                       layer=layer)
        return results[0] if single else results

    def score_cases(self, cases: Iterable[Any], *, batch_size: int = DEFAULT_BATCH, progress: bool | None = None,
                    saliency: bool = False, layer: str = "auto") -> list[Prediction]:
        """Score :class:`~pipeline.predict_inputs.Case` objects in batches, in order (maps on request)."""
        from pipeline.explain import choose_layer
        from pipeline.predict_inputs import Progress

        layer = choose_layer(self.network, self.input_shape, layer) if saliency else ""
        cases = list(cases)
        results = [Prediction(key=c.key, reason=c.reason, series_key=c.series_key) for c in cases]
        ready = [i for i, c in enumerate(cases) if not c.reason]
        meter = Progress(len(ready), enabled=progress)
        for start in range(0, len(ready), batch_size):
            batch, images = [], []
            for i in ready[start:start + batch_size]:
                try:
                    image, affine = self.prepare_with_affine(cases[i].image_path, cases[i].modality, cases[i].shape)
                except PipelineInputError as error:
                    results[i].reason = str(error)
                    continue
                images.append(image)
                batch.append(i)
                if saliency:
                    results[i].image, results[i].affine = image, affine
            if images:
                x = torch.from_numpy(np.stack(images))
                for i, score in zip(batch, self.scores(x).tolist()):
                    results[i].score = float(score)
                    results[i].positive = self.decide(float(score))
                if saliency:
                    self._add_saliency([results[i] for i in batch], x, layer)
            meter.advance(len(ready[start:start + batch_size]))
        meter.close()
        return results


    def _add_saliency(self, results: list[Prediction], x: torch.Tensor, layer: str) -> None:
        from pipeline.explain import grad_cam

        for result, cam in zip(results, grad_cam(self.network, self.normalization, x, layer)):
            result.saliency, result.saliency_layer = cam, layer


def build_network(layout: dict[str, Any]) -> nn.Module:
    """The MONAI ResNet a model file describes, with random weights (load the state next)."""
    try:
        return build_resnet(NetworkLayout(
            layout["arch"], int(layout["spatial_dims"]), int(layout["in_channels"]), int(layout["num_classes"]),
            tuple(layout["stem_kernel"]), tuple(layout["stem_stride"]), layout["shortcut_type"],
            bool(layout["bias_downsample"]),
        ))
    except (KeyError, TypeError, ValueError, AssertionError) as error:
        raise ModelFileError(
            f"model file's network layout must describe a ResNet this version builds; got {layout!r} ({error}). "
            "Retrain with this version (dvc repro -f train)."
        ) from None


def read_threshold(metrics_json: str | Path) -> float:
    """The threshold evaluate chose on the validation split, on the model's score scale, from its ``metrics.json``.

    That is ``val.threshold_score``: ``val.threshold`` is on the recalibrated scale when
    ``evaluate.calibration`` is not ``none`` (the default is ``platt``), and a classifier
    compares the model's own probability with its threshold.
    """
    path = Path(metrics_json)
    try:
        value = json.loads(path.read_text())["val"]["threshold_score"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PipelineInputError(
            f"metrics file {str(path)!r} must be evaluate's metrics.json with val.threshold_score; could not read it "
            f"({type(error).__name__}: {error}). Run evaluate, or give --threshold."
        ) from None
    if value is None:
        raise PipelineInputError(
            f"metrics file {str(path)!r}: val.threshold_score must be a number; got null (the recalibration map "
            "fitted on val is not monotone, or calls every score positive, so no cut on the model's score "
            "exists). Give --threshold, or set evaluate.calibration: platt or none and run evaluate again."
        )
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise PipelineInputError(
            f"metrics file {str(path)!r}: val.threshold_score must be a finite number; got {value!r}."
        )
    return float(value)


class ThresholdFileError(PipelineInputError):
    """A ``threshold.json`` cannot be applied to this model: another model's, or no cut on the score scale."""


@dataclass(frozen=True)
class RecordedThreshold:
    """The cut a ``threshold.json`` gives a model.

    Attributes:
        value: the threshold on the model's score scale (``threshold_score``).
        checked: whether the file's model digest was compared with the model's (``False``
            when the file records none: evaluate ran without ``train_summary.json``).
    """

    value: float
    checked: bool


def threshold_for_model(threshold_json: str | Path, model_digest: str) -> RecordedThreshold:
    """The threshold evaluate chose on val, from its ``threshold.json``, for the model of ``model_digest``.

    Args:
        threshold_json: ``reports/threshold.json``.
        model_digest: the sealed digest of the model it is to be applied to (``meta["digest"]``).

    Raises:
        ArtifactError: the file is missing, not JSON, or lacks a key.
        ThresholdFileError: it was chosen on another model's scores, or holds no cut on the
            model's score scale.
    """
    path = Path(threshold_json)
    record = ThresholdRecord.read(path)
    if record.model_digest is not None and record.model_digest != model_digest:
        raise ThresholdFileError(
            f"threshold file {str(path)!r} must come from the model it is applied to; it was chosen on the scores "
            f"of model {record.model_digest[:12]}..., and this model file is {model_digest[:12]}.... Run evaluate "
            "on this model's predictions (dvc repro), or give the threshold with --threshold."
        )
    if record.threshold_score is None:
        raise ThresholdFileError(
            f"threshold file {str(path)!r} must hold a cut on the model's score scale; its threshold_score is null "
            f"({record.threshold_score_reason}). Give --threshold, or set evaluate.calibration: platt or none."
        )
    return RecordedThreshold(value=float(record.threshold_score), checked=record.model_digest is not None)


def load_classifier(path: str | Path, *, threshold: float | None = None, threshold_file: str | Path | None = None,
                    metrics: str | Path | None = None, device: str | None = None) -> Classifier:
    """Rebuild the classifier from a model file written by ``train``, nothing else needed.

    Args:
        path: ``models/best.ckpt``.
        threshold: decision threshold on the score; overrides ``threshold_file`` and ``metrics``.
        threshold_file: evaluate's ``threshold.json``: the threshold chosen on val, refused
            when it was chosen on another model's scores (a :class:`ThresholdFileError`),
            warned about when it names no model; overrides ``metrics``.
        metrics: evaluate's ``metrics.json``, whose validation threshold (on the model's
            score scale, ``val.threshold_score``) is then used.
        device: ``cuda`` or ``cpu``; default the GPU when there is one.

    Raises:
        ModelFileError: the file is missing, foreign, another format version or altered.
        ThresholdFileError, ArtifactError: ``threshold_file`` is another model's or unreadable.
    """
    model_file = read_model_file(path)
    if threshold is None and threshold_file is not None:
        recorded = threshold_for_model(threshold_file, model_file.meta["digest"])
        if not recorded.checked:
            warnings.warn(f"threshold file {str(threshold_file)!r} names no model (evaluate ran without "
                          "train_summary.json), so it could not be checked against this one", stacklevel=2)
        threshold = recorded.value
    elif threshold is None and metrics is not None:
        threshold = read_threshold(metrics)
    return Classifier(model_file, threshold=threshold, device=device)
