"""Validation AUC: the project's training configuration against MONAI's tutorial one.

Both train on the same cached volumes (``preprocess`` output), for the same epochs and
batch size, and are scored on the same validation split after every epoch:

- **project**: :func:`pipeline.training.train_and_predict` with ``params.yaml``'s model
  and train sections (ImageNet stem layout, AdamW with a cosine schedule, the params'
  augmentation setting), as ``dvc repro`` runs it;
- **tutorial**: the configuration of MONAI's ``3d_classification`` tutorial that
  ``train_throughput.py`` times as (c): MONAI's default ``resnet18(spatial_dims=3)``
  (stem stride 1), two-class cross-entropy, Adam at 1e-5, ``ScaleIntensity`` and
  ``RandRotate90(prob=0.8)`` per sample. The tutorial resizes to a cube and rotates in
  the (0, 2) plane; the cache is not cubic, so the rotation here is in-plane (0, 1).

Usage: ``python benchmarks/val_auc_vs_tutorial.py [--cache data/cache] [--epochs N]``.
The last line printed is one JSON object. CPU cost: the tutorial's stride-1 stem does
about 8x the project model's work, so 10 epochs of 60 volumes take minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cache import open_split  # noqa: E402
from pipeline.config import ModelConfig, TrainConfig, load_params  # noqa: E402
from pipeline.training import train_and_predict  # noqa: E402


def project_run(cache: Path, params: dict, epochs: int, batch: int) -> dict:
    """The real train path; per-epoch validation AUC read back from its DVCLive log."""
    model = ModelConfig.from_params(params)
    train = dataclasses.replace(
        TrainConfig.from_params(params), max_epochs=epochs, batch_size=batch, resume=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        summary = train_and_predict(
            cache, out / "models", out / "predictions.csv", out / "summary.json", out / "live", model=model, train=train
        )
        seconds = time.perf_counter() - start
        log = (out / "live" / "plots" / "metrics" / "val" / "auc.tsv").read_text().splitlines()[1:]
        per_epoch = [float(line.split("\t")[-1]) for line in log]
    return {"best_val_auc": summary.best_val_auc, "val_auc_per_epoch": per_epoch, "seconds": seconds,
            "weights": summary.provenance.get("source")}


def tutorial_run(cache: Path, epochs: int, batch: int, seed: int) -> dict:
    """MONAI's tutorial model and optimiser on the same cached volumes (on the GPU when there is one)."""
    from monai.networks.nets import resnet18
    from monai.transforms import Compose, RandRotate90, ScaleIntensity

    torch.manual_seed(seed)
    train, val = open_split(cache, "train"), open_split(cache, "val")
    x_train = np.asarray(train.images, dtype=np.float32)
    x_val = torch.from_numpy(np.asarray(val.images, dtype=np.float32))
    y_train = torch.as_tensor(train.labels, dtype=torch.long)
    transform = Compose([ScaleIntensity(), RandRotate90(prob=0.8, spatial_axes=(0, 1))])
    transform.set_random_state(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = resnet18(spatial_dims=3, n_input_channels=1, num_classes=2).to(device)
    optimizer = torch.optim.Adam(model.parameters(), 1e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    per_epoch = []
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            x = torch.stack([torch.as_tensor(transform(x_train[j])) for j in idx.tolist()])
            loss = loss_fn(model(x.to(device)), y_train[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x_val[i : i + batch].to(device)).cpu() for i in range(0, len(x_val), batch)])
        margin = (logits[:, 1] - logits[:, 0]).numpy()  # rank by logit margin: no saturation
        per_epoch.append(float(roc_auc_score(val.labels, margin)))
    return {"best_val_auc": max(per_epoch), "val_auc_per_epoch": per_epoch, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("data/cache"), help="preprocess output (default data/cache)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--epochs", type=int, default=None, help="default: train.max_epochs")
    parser.add_argument("--batch", type=int, default=None, help="default: train.batch_size")
    args = parser.parse_args(argv)
    if not (args.cache / "meta.json").is_file():
        raise SystemExit(f"--cache {str(args.cache)!r} must be a preprocess output folder; run 'dvc repro preprocess'.")

    params = load_params(args.params)
    train = TrainConfig.from_params(params)
    epochs = args.epochs or train.max_epochs
    batch = args.batch or train.batch_size
    project = project_run(args.cache, params, epochs, batch)
    tutorial = tutorial_run(args.cache, epochs, batch, train.seed)
    n_val = len(open_split(args.cache, "val").labels)
    print(f"cache {args.cache}: {epochs} epochs, batch {batch}, {n_val} validation volumes")
    for name, run in (("project", project), ("tutorial", tutorial)):
        curve = " ".join(f"{v:.2f}" for v in run["val_auc_per_epoch"])
        print(f"{name:9s} best val AUC {run['best_val_auc']:.3f} in {run['seconds']:.0f} s; per epoch: {curve}")
    print(json.dumps({
        "cache": str(args.cache), "epochs": epochs, "batch": batch, "n_val": n_val,
        "project_weights": project["weights"],
        "project_best_val_auc": round(project["best_val_auc"], 4),
        "tutorial_best_val_auc": round(tutorial["best_val_auc"], 4),
        "project_seconds": round(project["seconds"], 1), "tutorial_seconds": round(tutorial["seconds"], 1),
    }))


if __name__ == "__main__":
    main()
