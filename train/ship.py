"""Train and export every shipped checkpoint on this machine: ``python -m train.ship``.

The recipe below is how the files in ``weights/`` were made (the ``cpu`` preset: 128 px crops of
images resized to 160 px, batch 4, Adam 5e-4, unless a stage says otherwise). It runs the ordinary
entry points one after the other (``python -m train.<method> ... --export weights/<name>.npz``), each
stage in its own work directory under ``runs/`` so an interrupted recipe resumes where it stopped; a
checkpoint already in ``weights/`` is skipped (``--force`` retrains, ``--from_stage K`` continues an
existing export with stage K). Decoders that share a mirror architecture are warm-started from an
earlier export (``--init``): the least-squares relu1_1 decoder seeds the teacher-forced skip decoders
(CBAM, AAMS, Avatar-Net); the CBAM conv4_1 decoder with its skips folded (``--fold_skips``,
:mod:`train.fold`) seeds the AdaIN decoder, which SANet's last stage uses frozen, and that of conv5_1
the relu5_1 WCT decoder; the first, end-to-end AdaIN decoder (``adain@0``) seeded SANet and the relu4_1
WCT decoder. Each then trains on its own loss (the skip decoders end with a stylization stage). The step counts are a CPU
budget (a few hours of a shared 2-core CPU for everything; int8 kernels keep all of them under
60 MB), nothing like the papers' 160k GPU steps.

    nice python -m train.ship                    # everything missing, in priority order
    python -m train.ship --only sanet adain      # a subset
    python -m train.ship --list                  # the recipe
    python -m train.ship --only sanet --force --from_stage 1   # continue SANet with its stage 1

Afterwards ``weights/manifest.json`` lists each file's SHA-256, size and training summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from train.config import split_init

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "weights"

# (checkpoint name, stages) in dependency order. A stage is (entry point, extra flags, warm start): a
# name's first stage may start from earlier names' exports; each later stage continues from the
# previous stage's export of the same name unless it lists its own starts (then exactly those, applied
# in order, later files overriding: train.trainer's comma-separated --init). A start is a checkpoint
# name (its export in weights/ at that point of the recipe) or "name@k", the export of stage k of that
# name, which ship keeps in runs/recipe/ (for starts from a stage that a later stage replaced).
# Each stage has its own work directory, runs/<name>.<k>.
Stage = tuple[str, list[str], str | tuple[str, ...] | None]
RECIPE_EXPORTS = REPO / "runs" / "recipe"
_SEGMENTS = ["--teacher_forcing", "true", "--batch_size", "8", "--lr", "1e-3"]  # skip decoders, see below
_LSTSQ_HEAD = ["--frozen", "decoder/dec1_1"]  # AAMS/CBAM's linear RGB head, from wct_relu1_1, see below
_STYLIZATION_LOSS = ["--style_weight", "10", "--batch_size", "4", "--lr", "1e-4", "--warmup_steps", "20"]
_STYLIZATION = [*_STYLIZATION_LOSS, "--steps", "400"]
_MORE_STYLIZATION = [*_STYLIZATION_LOSS, "--steps", "300"]  # the skip decoders' third stage
# AAMS/CBAM's first two stages ran with the TF code's zero-padded decoder; the third (_REFLECTED) fine-tunes
# them by reflection, as stylize runs them (nst_jax.methods.aams.DECODER_PADDING).
_ZERO = ["--decoder_padding", "zero"]
_REFLECTED = [*_MORE_STYLIZATION, "--decoder_padding", "reflect"]
# AAMS's stage 3 (2026-12-08) trains its self-attention alone, decoder frozen, on the paper's own
# reconstruction loss (pixel + perceptual + TV + 6 |A|_1). Stages 0-2 train the decoder only, so the
# attention stayed the identity start (A = 0): an all-zero attention map, and multi-stroke fusion
# clustering a constant. After it mean |A| ~ 0.6 and the map marks the textured regions the frozen
# decoder reconstructs worst (gravel, rock, fabric folds), not the object: on this budget the L1 term
# (~4) is negligible beside the pixel term (~1e4). Stylized outputs barely change (quality: README).
# The same stage for CBAM conv4_1 (its 7x7 spatial gate) gave a near-uniform map with bright borders,
# no better than its random start, so it is not shipped.
_ATTENTION_ONLY = ["--frozen", "decoder", "--steps", "300", "--batch_size", "4", "--lr", "3e-4",
                   "--warmup_steps", "20"]
RECIPE: list[tuple[str, list[Stage]]] = [
    # The relu1_1 decoder is linear: closed-form least squares, then a short fine-tune.
    ("wct_relu1_1", [("wct", ["--level", "1", "--lstsq_crops", "128", "--steps", "100", "--lr", "1e-4"], None)]),
    # The skip decoders (CBAM, AAMS, Avatar-Net) are trained teacher-forced (--teacher_forcing,
    # train.common.segment_terms): each segment between two AdaIN skips learns to map VGG's
    # relu{k+1}_1 to relu{k}_1 on the encoder's own features, so at transfer time the style's skips
    # act on VGG-like activations (a multi-level AdaIN). End-to-end reconstruction from any warm start
    # left them unrecognisable within this budget (held-out style ratios 1.17-1.64: Avatar-Net
    # 1.34, AAMS 1.27, CBAM 1.25 / 1.17 / 1.47, and session 6's three Avatar-Net retrainings; in
    # session 7, 150 end-to-end steps with a deep-supervision term at the skips, 1.61 / 1.63, or with
    # AdaIN's loss on decoded transfers added, CBAM conv4_1 1.50, fared no better), and a
    # further 100 end-to-end steps of the cpu preset's pixel-dominated loss after this stage undid
    # the stylization (CBAM conv4_1: held-out style ratio 0.77 -> 1.11). The relu5_1 decoder holds
    # every segment, so it is trained first (its linear RGB head from the least-squares relu1_1
    # decoder) and seeds the others; their attention modules keep their initial state (AAMS: the
    # identity, train.aams.identity_start). The RGB head stays FROZEN at its least-squares start
    # (--frozen): trained at this learning rate it drifted from ~42 dB to 19-23 dB on its own segment
    # (relu1_1 -> RGB) within 150-250 steps, and the heads alone made Avatar-Net's transfers grey (held-out
    # style ratio 1.43 -> 0.84 with the least-squares head put back, recon 17.5 -> 20.7 dB; CBAM conv4_1
    # 0.82 -> 0.79, AAMS 0.88 -> 0.85). CBAM conv5_1's weak link is its first segment (relu5_1 -> relu4_1,
    # correlation 0.68 after AdaIN; the others 0.78-0.95): 150 more steps of that segment alone at 256 px
    # crops (batch 2, lr 5e-4, the rest frozen) moved it to 0.71 and the style ratio only 1.09 -> 1.06: not kept.
    # What was missing was texture, not the segment: each reconstruction-trained segment predicts the
    # conditional mean of the next level (blur that the skips' statistics cannot sharpen; per-layer style
    # ratios 1.5 / 1.25 / 1.23 at relu2_1..4_1). A later stage (_STYLIZATION: train.common.stylization_terms,
    # AdaIN's loss on AdaIN(content, style) at the input layer, decoded with the style's skips, 400 steps)
    # gives every skip decoder its texture: held-out style ratios CBAM conv5_1 1.09 -> 0.56 (content 0.96
    # -> 0.96), Avatar-Net 0.84 -> 0.42 (content 0.91 -> 0.90), AAMS 0.85 -> 0.49 (content 0.79 -> 0.83),
    # CBAM conv4_1 0.79 -> 0.46 (content 0.84 -> 0.87), conv3_1 0.73 -> 0.59 (content 0.72 -> 0.73).
    # Style weight 3 instead of 10 (Avatar-Net) scored the same, 0.42 / 0.89: the style's skips and the
    # swapped input, not the weight, set how legible the photo stays. The others' first stages start
    # from the teacher-forced conv5_1 decoder (cbam_conv5_1@0), as they were made.
    # Stage 2 (AAMS/CBAM, 2026-12-01): those two stages padded the decoder with zeros as AAMS's TF code
    # does, and every transfer had a dark frame along its borders; 300 more steps of the stylization
    # loss with reflect padding removed it. On the 8 quality pairs at alpha 0.5, against stage 1 (style /
    # Gram / content means): CBAM conv4_1 0.383 / 0.380 / 0.801 -> 0.357 / 0.359 / 0.788 (style lower
    # on all 8 pairs, content on 7), AAMS 0.386 / 0.382 / 0.802 -> 0.362 / 0.363 / 0.785, conv3_1
    # 0.455 / 0.454 / 0.665 -> 0.444 / 0.443 / 0.659 (style and content lower on 7 of 8), conv5_1 0.476
    # / 0.479 / 0.949 -> 0.474 / 0.477 / 0.954 (mixed: only the frame changed). Part of the gains is the
    # 300 more steps (Avatar-Net's stage 2, already reflect-padded, gained as much); the frame is the
    # padding's. (AAMS's and CBAM conv4_1's decoders are the same network trained the same way: neither
    # stage touches the attention modules, so their stage losses agree to the last digit.)
    ("cbam_conv5_1", [("cbam", ["--depth", "conv5_1", *_SEGMENTS, *_LSTSQ_HEAD, *_ZERO, "--steps", "250"],
                       "wct_relu1_1"),
                      ("cbam", ["--depth", "conv5_1", *_STYLIZATION, *_LSTSQ_HEAD, *_ZERO], None),
                      ("cbam", ["--depth", "conv5_1", *_REFLECTED, *_LSTSQ_HEAD], None)]),
    ("cbam_conv4_1", [("cbam", ["--depth", "conv4_1", *_SEGMENTS, *_LSTSQ_HEAD, *_ZERO, "--steps", "50"],
                       "cbam_conv5_1@0"),
                      ("cbam", ["--depth", "conv4_1", *_STYLIZATION, *_LSTSQ_HEAD, *_ZERO], None),
                      ("cbam", ["--depth", "conv4_1", *_REFLECTED, *_LSTSQ_HEAD], None)]),
    ("aams", [("aams", [*_SEGMENTS, *_LSTSQ_HEAD, *_ZERO, "--steps", "50"], "cbam_conv5_1@0"),
              ("aams", [*_STYLIZATION, *_LSTSQ_HEAD, *_ZERO], None),
              ("aams", [*_REFLECTED, *_LSTSQ_HEAD], None),
              ("aams", _ATTENTION_ONLY, None)]),
    ("cbam_conv3_1", [("cbam", ["--depth", "conv3_1", *_SEGMENTS, *_LSTSQ_HEAD, *_ZERO, "--steps", "50"],
                       "cbam_conv5_1@0"),
                      ("cbam", ["--depth", "conv3_1", *_STYLIZATION, *_LSTSQ_HEAD, *_ZERO], None),
                      ("cbam", ["--depth", "conv3_1", *_REFLECTED, *_LSTSQ_HEAD], None)]),
    # Avatar-Net's head (dec1_1 64 -> 64 + ReLU, 7x7 RGB conv) has no counterpart to copy: it starts as
    # the identity + the least-squares relu1_1 decoder (train.avatar.fit) and stays there; 350
    # teacher-forced steps from a random head reached only ~18 dB on it.
    # Stage 2 (2026-12-01): 300 more steps of stage 1's loss (Avatar-Net's decoder already pads by
    # reflection). 8 quality pairs at alpha 0.5: style 0.373 -> 0.344 and content 0.803 -> 0.795, both
    # lower on all 8 pairs (Gram 0.364 -> 0.340).
    ("avatar", [("avatar", [*_SEGMENTS, "--head_lstsq_crops", "128", "--frozen", "decoder/dec1_1,decoder/head",
                            "--steps", "150"], "cbam_conv5_1@0"),
                ("avatar", [*_STYLIZATION, "--frozen", "decoder/dec1_1,decoder/head"], None),
                ("avatar", [*_MORE_STYLIZATION, "--frozen", "decoder/dec1_1,decoder/head"], None)]),
    # Stage 0: end to end from a random init (the paper's training; it seeds SANet and the relu4_1 WCT
    # decoder as adain@0). Held-out style 0.71 / content 0.90, recon 13.4 dB: blocky hatching, the photo
    # faint. Stage 1 replaces it: the teacher-forced CBAM conv4_1 decoder with its skips folded into fixed
    # affines (--fold_skips, train/fold.py: ~17.6 dB and style 1.04 / content 0.65 before any AdaIN
    # training), then AdaIN's loss at lr 1e-4: held-out style 0.64 / Gram 0.65 / content 0.65, recon
    # 18.6 dB, clean images; training losses content 1.6 / style 11.5 against stage 0's 3.3 / 21.4. (A
    # first fold that scaled dec{k}_1's input channels, without the dead-channel rule, trained to only
    # 2.0 / 18.6 in 300 steps, and its int8 export broke: float16 bias overflow.)
    # Stage 2: 3000 more steps of AdaIN's loss from stage 1's export. Its --fold_skips re-ran the fold
    # on that already plain decoder (train.fold accepts any export with one decoder): it recalibrated
    # the decoder's activations to the encoder's statistics, the first training losses rose from
    # stage 1's 1.6 / 11.5 to ~1.9 / 15.7, and training brought them down to 1.6 / 8.6 (still slowly
    # falling). On the 8 quality pairs: style 0.575 -> 0.475 (lower on each pair), Gram 0.634 -> 0.506,
    # content 0.671 -> 0.676; recon 18.6 -> 17.5 dB; the float32 export scored as the int8 one
    # (0.473 / 0.504 / 0.676).
    # Stage 3: 2800 more steps of the same loss from stage 2's export, no fold, a fresh Adam (27 min;
    # training style loss 8.3 -> 7.1, content 1.6). 8 quality pairs, pair by pair against stage 2:
    # style lower on 7 (0.461 -> 0.463 on the 8th; mean 0.460 -> 0.420), Gram lower on all 8 (0.477 ->
    # 0.421), content mixed, 4 up and 4 down (mean 0.673 -> 0.676). A stage 4 like it (2000 steps from
    # stage 3's export, 20 min; training style loss 7.1 -> ~6.5) was not kept: pair by pair style lower
    # on 3 of 8 and higher on 5 (mean 0.421 -> 0.423, though the median fell 0.437 -> 0.408), content
    # 0.676 -> 0.673.
    ("adain", [("adain", ["--steps", "800"], None),
               ("adain", ["--steps", "400", "--lr", "1e-4", "--warmup_steps", "20", "--fold_skips", "24"],
                "cbam_conv4_1@1"),
               ("adain", ["--steps", "3000", "--lr", "1e-4", "--warmup_steps", "20", "--fold_skips", "24"],
                None),
               ("adain", ["--steps", "2800", "--lr", "1e-4", "--warmup_steps", "20"], None)]),
    # 3 decodes per pair: batch 2; identity-initialised transform (train.sanet.identity_start). Stage 1:
    # the SANET re-implementation's identity weights (50 pixels, 1 features): with the paper's 1 / 50
    # the feature identity term is ~50x the style term early on and a short run learns no style.
    ("sanet", [("sanet", ["--steps", "150", "--batch_size", "2", "--lr", "2e-4"], "adain@0"),
               ("sanet", ["--steps", "400", "--batch_size", "2", "--lr", "2e-4",
                          "--identity_pixel_weight", "50", "--identity_feature_weight", "1"], None),
               # Stage 2: style weight 10 (AdaIN's) instead of the paper's 3: after stage 1 our SANet
               # scored a held-out style ratio of 1.06 against AdaIN's 0.71 (its unweighted mean/std
               # term ended ~3x AdaIN's, over relu1_1..5_1 vs 1_1..4_1): the paper's balance
               # under-stylizes with our normalised units and a CPU budget.
               ("sanet", ["--steps", "300", "--batch_size", "2", "--lr", "2e-4", "--style_weight", "10",
                          "--identity_pixel_weight", "50", "--identity_feature_weight", "1"], None),
               # Stage 3: style weight 20: stage 2 moved the held-out style ratio only 1.06 -> 1.00.
               ("sanet", ["--steps", "200", "--batch_size", "2", "--lr", "2e-4", "--style_weight", "20",
                          "--identity_pixel_weight", "50", "--identity_feature_weight", "1"], None),
               # Stage 4, the same (stage 3 ended at 0.91): 0.91 -> 0.83. From stage 3, 120 steps at style
               # weight 50 (lr 5e-4) scored 1.09, at lr 1e-3 it diverged, and 250 at weight 30, 1.09:
               # each stage restarts Adam, and a larger style weight's first steps undo the stylization. A
               # further stage like it scored 0.90 (batch-2 noise): not kept. Nor a stage at style weight 50 with a
               # 50-step learning-rate warm-up (--warmup_steps, so the fresh Adam's first steps could not
               # undo it): 0.83 / Gram 0.81 / content 0.92 against this stage's 0.83 / 0.77 / 0.86.
               ("sanet", ["--steps", "250", "--batch_size", "2", "--lr", "2e-4", "--style_weight", "20",
                          "--identity_pixel_weight", "50", "--identity_feature_weight", "1"], None),
               # Stage 5: stage 4's transform with AdaIN's stage-1 decoder (adain@1: the folded CBAM conv4_1
               # decoder + AdaIN's loss), the decoder FROZEN: only the transform can lower the style loss,
               # so it learns to hand the clean decoder AdaIN-like statistics, and the end-to-end
               # decoder's blocky hatching is gone. On the 8 quality pairs: style 0.68 -> 0.54, Gram
               # 0.70 -> 0.58, content 0.87 -> 0.84 (0.74 / 0.79 / 0.80 after 300 steps, 0.66 / 0.70 /
               # 0.84 after 700, 0.65 / 0.65 / 0.84 after 1100; made as 1100 steps resumed to 2200, the
               # inverse-time schedule and Adam state carried on). Resumed on to 3300 steps: 0.54 / 0.57 /
               # 0.87, settled: not kept. Training both (lr 1e-4, 300 steps) scored 0.81 / 0.80 / 0.82:
               # not kept.
               ("sanet", ["--steps", "2200", "--batch_size", "2", "--lr", "2e-4", "--warmup_steps", "20",
                          "--style_weight", "20", "--identity_pixel_weight", "50", "--identity_feature_weight", "1",
                          "--frozen", "decoder"], ("sanet@4", "adain@1"))]),
    # Not kept: a stage 6 like stage 5 under AdaIN's stage-2 decoder (1600 steps from stage 5's
    # transform; the transform unchanged under that decoder had scored 0.78 / 0.99 / 0.85). Its 8-pair
    # medians looked better (style 0.538 -> 0.494, Gram 0.581 -> 0.539, content 0.843 -> 0.833), but pair
    # by pair its style ratio was worse on 5 of the 8 pairs (mean 0.511 -> 0.550; the median moved
    # because other pairs landed in the middle); resumed to 3000 steps: 0.525 / 0.544 / 0.843. Judge a
    # candidate pair by pair, not by the median alone.
    # Not kept either (2026-12-01, from stage 5, 8-pair means style / Gram / content 0.511 / 0.524 /
    # 0.833): (a) the transform alone at --content_weight 3, 1200 steps: 0.559 / 0.565 / 0.833, its
    # training content term flat from the first log on (the frozen decoder's reconstruction, not the
    # transform, holds the content ratio up); (b) the decoder alone (--frozen transform, lr 1e-4,
    # --content_weight 2, identity weights 200 pixels / 3 features, 1500 steps): content lower on every
    # pair (0.78) but style 0.597, about where stage 5 at alpha ~0.75 lands on its own alpha curve
    # (alpha 0.8: 0.576 / 0.795, 0.6: 0.683 / 0.762): a trade along that curve, not a better model.
    ("wct_relu2_1", [("wct", ["--level", "2", "--steps", "400", "--lr", "1e-3"], None)]),
    ("wct_relu3_1", [("wct", ["--level", "3", "--steps", "250"], None),
                     ("wct", ["--level", "3", "--steps", "400"], None)]),
    # The relu4_1 reconstruction decoder seeds the relu5_1 one's first stage: stage 1 trains it on.
    ("wct_relu4_1", [("wct", ["--level", "4", "--steps", "60"], "adain@0"),
                     ("wct", ["--level", "4", "--steps", "300"], None)]),
    # A further 300 steps from this export (session 5) lowered held-out PSNR 11.3 -> 10.9 dB: not kept.
    # Stage 1 replaces it with CBAM conv5_1's decoder, skips folded (train/fold.py), and nothing else: one
    # step at a negligible learning rate (a trainer run takes at least one step). Held-out recon 11.3 ->
    # 13.4 dB, WCT style ratio 0.56 -> 0.53 and content 0.97 -> 0.88: the photo is visible again. 50
    # steps of the reconstruction loss at lr 1e-4 after the fold lowered the training loss 14.2 -> 12.1
    # but scored 0.56 / 0.94, 10.8 dB: not kept. Folding CBAM conv4_1's decoder for the relu4_1 one
    # reconstructed better (18.5 dB against 17.6) but the transfer scored less stylized (0.64), the
    # conv3_1 folds for relu3_1 / relu2_1 (24.9 / 29.4 dB against 20.6 / 21.3) no differently (0.53 /
    # 0.89): not kept.
    ("wct_relu5_1", [("wct", ["--level", "5", "--steps", "100"], "wct_relu4_1"),
                     ("wct", ["--level", "5", "--steps", "1", "--lr", "1e-12", "--fold_skips", "24"],
                      "cbam_conv5_1@0")]),
    # The plain mirror (--norm none), warm-started whole from the relu3_1 WCT decoder. With the released
    # net's instance norm the warm-started kernels sit between norm layers they were not trained with,
    # and the norms discard each image's channel statistics, i.e. much of the swapped style's colour:
    # 300 steps of it scored held-out style ratio 1.33 (grey-green outputs), recon 12.9 dB; this 1.16, 17.8 dB.
    # Stages 1-2 add --style_weight (train.style_swap: the AdaIN moment loss of each decoded latent to
    # the image its patches come from, not in the paper) at lr 2e-4: the paper's feature loss alone
    # left the decoded swaps at ~0.5-0.6x the style's activation std at every VGG layer (style ratio
    # 1.16 after stage 0). Stage 1 (weight 1): 0.77, stage 2 (weight 3): 0.65, content 0.66 -> 0.68,
    # recon 17.8 -> 23.4 dB. 140 steps of stage 0's loss at lr 2e-4 lowered the feature loss only
    # 1.15 -> 1.0 (stopped). Stage 2 ran from stage 1's float32 export; the recipe starts it from the
    # shipped int8 file (a per-channel rounding of the same weights).
    ("style_swap", [("style_swap", ["--norm", "none", "--steps", "300"], "wct_relu3_1"),
                    ("style_swap", ["--norm", "none", "--steps", "300", "--lr", "2e-4", "--style_weight", "1"], None),
                    ("style_swap", ["--norm", "none", "--steps", "300", "--lr", "2e-4", "--style_weight", "3"], None)]),
    # Stage 1 as SANet's stage 3 (style weight 20, the SA code's identity weights): stage 0 kept the
    # paper's identity weights (1 pixels, 50 features), which held the transfer at the content (held-out
    # style ratio 1.15, content 0.73); after stage 1: 0.75 / 0.85. Stage 0 starts from SANet's stage 4
    # export (sanet@4), as it was made. SANet's stage 5 for it (transform alone under the frozen AdaIN
    # decoder, 600 steps) traded style for content on the 8 quality pairs (style 0.70 -> 0.74, Gram
    # 0.70 -> 0.79, content 0.88 -> 0.81): not kept.
    ("sanet_r41", [("sanet", ["--multi_level", "false", "--steps", "60", "--batch_size", "2", "--lr", "2e-4",
                              "--style_weight", "10"],
                    "sanet@4"),
                   ("sanet", ["--multi_level", "false", "--steps", "200", "--batch_size", "2", "--lr", "2e-4",
                              "--style_weight", "20", "--identity_pixel_weight", "50",
                              "--identity_feature_weight", "1"], None)]),
]


def start_path(start: str) -> Path:
    """File of a warm start: ``name`` -> weights/name.npz, ``name@k`` -> runs/recipe/name@k.npz."""
    return RECIPE_EXPORTS / f"{start}.npz" if "@" in start else WEIGHTS / f"{start}.npz"


def starts(name: str, stage: int, init: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if init is None:
        return (name,) if stage > 0 else ()
    return (init,) if isinstance(init, str) else tuple(init)


def missing_starts(name: str, stage: int, init: str | tuple[str, ...] | None) -> list[Path]:
    """The warm-start files of ``name``'s stage ``stage`` that do not exist yet."""
    return [start_path(f) for f in starts(name, stage, init) if not start_path(f).is_file()]


def command(name: str, stage: int, module: str, flags: list[str], init: str | tuple[str, ...] | None) -> list[str]:
    workdir = REPO / "runs" / (name if stage == 0 else f"{name}.{stage}")
    argv = [sys.executable, "-m", f"train.{module}", "--preset", "cpu", *flags,
            "--workdir", str(workdir), "--export", str(WEIGHTS / f"{name}.npz"),
            "--export_dtype", "int8", "--no_progress"]
    files = starts(name, stage, init)
    if files:
        argv += ["--init", ",".join(str(start_path(f)) for f in files)]
    return argv


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record(name: str) -> dict:
    """Summary of the export now in ``weights/<name>.npz`` (from the file and its card)."""
    from nst_jax import params_io  # pylint: disable=import-outside-toplevel

    path = WEIGHTS / f"{name}.npz"
    _, card = params_io.load(path)
    return {"file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size, "method": card["method"],
            "steps": card["steps"], "crop": card["image_size"]["crop"], "batch_size": card["batch_size"],
            "training_time_s": card["training_time_s"],
            "warm_start": ",".join(Path(p).stem for p in split_init(card["config"].get("init", ""))) or None,
            "final_losses": card["final_losses"]}


_STAGE_KEYS = ("steps", "batch_size", "training_time_s", "warm_start", "final_losses")


def update_manifest(names: list[str], stage: int | None = None) -> None:
    """Refresh the manifest entries of ``names``; after a recipe stage, also record that stage (the
    entry's ``steps`` / ``training_time_s`` are then the totals over its stages)."""
    manifest_path = WEIGHTS / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entries = manifest.setdefault("checkpoints", {})
    for name in names:
        if not (WEIGHTS / f"{name}.npz").is_file():
            continue
        old, new = entries.get(name, {}), record(name)
        stages = old.get("stages") or ([{k: old.get(k) for k in _STAGE_KEYS}] if old else [])
        if stage is not None:
            stages = stages[:stage] + [{k: new[k] for k in _STAGE_KEYS}]
        if stages:
            new["stages"] = stages
            new["steps"] = sum(st["steps"] for st in stages)
            new["training_time_s"] = round(sum(st["training_time_s"] or 0 for st in stages), 2)
            new["warm_start"] = stages[0]["warm_start"]
        entries[name] = new
    manifest["checkpoints"] = dict(sorted(entries.items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="train only these checkpoints")
    parser.add_argument("--force", action="store_true", help="retrain checkpoints that already exist")
    parser.add_argument("--list", action="store_true", help="print the recipe's commands and exit")
    parser.add_argument("--manifest", action="store_true",
                        help="only rewrite weights/manifest.json entries of the checkpoints present")
    parser.add_argument("--from_stage", type=int, default=0, metavar="K",
                        help="start each selected checkpoint's recipe at stage K (continue an existing export)")
    args = parser.parse_args(argv)
    known = [name for name, _ in RECIPE]
    unknown = sorted(set(args.only or []) - set(known))
    if unknown:
        parser.error(f"unknown checkpoint(s) {unknown}; the recipe has {', '.join(known)}")
    todo = [r for r in RECIPE if not args.only or r[0] in args.only]
    if args.manifest:
        update_manifest([name for name, _ in todo])
        return 0
    if args.list:
        for name, stages in todo:
            for k, stage in enumerate(stages):
                print(" ".join(command(name, k, *stage)[1:]))
        return 0
    for name, stages in todo:
        target = WEIGHTS / f"{name}.npz"
        if target.is_file() and not args.force:
            print(f"[ship] {name}: {target.name} exists, skipped (--force retrains)", flush=True)
            continue
        if args.from_stage >= len(stages):
            print(f"[ship] {name}: has {len(stages)} stages, none from stage {args.from_stage}; skipped", flush=True)
            continue
        missing = missing_starts(name, args.from_stage, stages[args.from_stage][2])
        if missing:
            print(f"[ship] {name}: needs {', '.join(map(str, missing))} first (warm start); skipped", flush=True)
            continue
        for k in range(args.from_stage, len(stages)):
            missing = missing_starts(name, k, stages[k][2])
            if missing:
                print(f"[ship] {name} stage {k}: needs {', '.join(map(str, missing))} (warm start)", flush=True)
                return 1
            log_path = REPO / "runs" / f"{name}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            print(f"[ship] {name} stage {k}: training, log in {log_path}", flush=True)
            t0 = time.perf_counter()
            with log_path.open("a") as log:
                rc = subprocess.call(command(name, k, *stages[k]), stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
            if rc != 0:
                print(f"[ship] {name} stage {k}: failed (exit {rc}); see {log_path}", flush=True)
                return rc
            update_manifest([name], stage=k)
            RECIPE_EXPORTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, RECIPE_EXPORTS / f"{name}@{k}.npz")
            print(f"[ship] {name} stage {k}: exported in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
