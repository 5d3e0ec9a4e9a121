"""Decoders: mirrors of VGG19 from an encoder layer back to RGB, built from one spec table.

Every decoder here is the VGG19 encoder read backwards (:func:`decoder_spec`): the mirror of
``conv{b}_{i}`` (cin -> cout) is ``dec{b}_{i}`` (cout -> cin), a nearest x2 upsampling replaces each
max-pool, every conv is 3x3 and followed by ReLU except the one that produces RGB. Classes differ
only in the encoder layer they start from and a few switches:

==================  =============  ==============================================  ===========
class               input layer    extras                                          parameters
==================  =============  ==============================================  ===========
AdaINDecoder        relu4_1        -- (Huang & Belongie 2017; also SANet's)          3,505,219
WCTDecoder(level)   relu{level}_1  -- (Li et al. 2017), level 1..5                  1: 1,731
                                                                                   2: 112,451
                                                                                   3: 555,075
                                                                                   4: 3,505,219
                                                                                   5: 12,944,451
StyleSwapDecoder    relu3_1        instance norm after each hidden conv (the       555,459
                                   released Chen & Schmidt inverse net used IN;
                                   ``norm=None`` gives the plain 555,075 mirror)
SkipDecoder         relu4_1        AdaIN skips from relu3_1/2_1/1_1 before          3,549,827
  (Avatar-Net)                     dec3_1/dec2_1/dec1_1, dec1_1 is 64->64 + ReLU,
                                   then a 7x7 RGB head (Sheng et al. 2018)
SkipDecoder.aams()  relu3_1 /      AdaIN skips, 3x3 RGB head (= the mirror's       3_1: 555,075
  (AAMS / CBAM)     relu4_1 /      dec1_1; Yao et al. 2019); reflect padding        4_1: 3,505,219
                    relu5_1        (AAMS's TF code: zero)                          5_1: 12,944,451
==================  =============  ==============================================  ===========

(``python -c "from nst_jax.modules import param_count_table; print(param_count_table())"`` recomputes
the column from the modules themselves.)

Inputs and skip features are the encoder's Caffe-scale activations; the first thing a decoder does is
divide them by :data:`nst_jax.vgg19.MEAN_ACTIVATION` of their layer (no parameters), so its hidden
units work at the scale the papers' decoders saw from the normalised VGG19.

Images in this project are RGB in [0, 1], so decoders output [0, 1]-range RGB: there is no +127.5 as in
the TF anchors; instead the RGB conv's bias starts at 0.5 (mid-grey, the same role as their offset).
The output is not clamped (clamp when saving). Inputs of any size work: the output is the feature
size times ``2 ** (block - 1)``.

``width`` scales every hidden channel count (tests use ``width=1/8``); the parameter tree layout is
the same for every width.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from nst_jax import vgg19
from nst_jax.kernels.adain import adain
from nst_jax.kernels.conv import upsample2x
from nst_jax.modules.layers import Conv, InstanceNorm, conv_param_count, he_init, linear_init

Array = jax.Array
Skip = Array | Callable[[Array], Array]
NORMS = (None, "instance")


@dataclasses.dataclass(frozen=True)
class ConvStep:
    """One decoder convolution: ``name`` (param key), channels, kernel size, ReLU after it or not."""

    name: str
    cin: int
    cout: int
    kernel: int = 3
    relu: bool = True


@dataclasses.dataclass(frozen=True)
class UpStep:
    """Nearest-neighbour x2 upsampling (mirror of a 2x2 pool)."""


@dataclasses.dataclass(frozen=True)
class SkipStep:
    """AdaIN fusion with the skip features of encoder ``layer`` (Avatar-Net's style decorator skips)."""

    layer: str


Step = ConvStep | UpStep | SkipStep


def encoder_block(layer: str) -> int:
    """Block number ``b`` of a ``relu{b}_1`` layer name (the only layers decoders start from)."""
    valid = tuple(f"relu{b}_1" for b in range(1, 6))
    if layer not in valid:
        raise ValueError(f"decoders start from one of {valid}, got {layer!r}")
    return int(layer[4])


def decoder_spec(layer: str, *, skips: bool = False, head_kernel: int | None = None) -> tuple[Step, ...]:
    """The mirror of VGG19 from ``layer`` (``relu{b}_1``) back to RGB, as a list of steps.

    Args:
      layer: encoder layer the decoder consumes.
      skips: insert an AdaIN fusion with ``relu{k}_1`` before ``dec{k}_1`` for every block k < b
        (Avatar-Net / AAMS hourglass decoders).
      head_kernel: ``None``: ``dec1_1`` (64 -> 3, 3x3, no ReLU) produces RGB. An int: ``dec1_1`` is
        64 -> 64 with ReLU and a separate ``head`` conv (64 -> 3, ``head_kernel`` square, no ReLU)
        produces RGB (Avatar-Net: 7).
    """
    block = encoder_block(layer)
    convs = vgg19.CONV_SPECS[: vgg19.CONV_SPECS.index(next(s for s in vgg19.CONV_SPECS if s[:2] == (block, 1))) + 1]
    steps: list[Step] = []
    for b, i, enc_in, enc_out in reversed(convs):
        if skips and i == 1 and b < block:
            steps.append(SkipStep(f"relu{b}_1"))
        if (b, i) == (1, 1):
            if head_kernel is None:
                steps.append(ConvStep("dec1_1", enc_out, enc_in, relu=False))
            else:
                steps.append(ConvStep("dec1_1", enc_out, enc_out))
                steps.append(ConvStep("head", enc_out, 3, kernel=head_kernel, relu=False))
        else:
            steps.append(ConvStep(f"dec{b}_{i}", enc_out, enc_in))
        if i == 1 and b > 1:
            steps.append(UpStep())
    return tuple(steps)


def spec_param_count(spec: tuple[Step, ...], *, norm: str | None = None) -> int:
    """Analytic parameter count of a decoder spec (conv weights + biases, + 2C per instance norm;
    a conv followed by instance norm has no bias)."""
    total = 0
    for step in spec:
        if isinstance(step, ConvStep):
            normed = norm is not None and step.relu
            total += conv_param_count(step.cin, step.cout, step.kernel, bias=not normed)
            total += 2 * step.cout if normed else 0
    return total


class _MirrorDecoder(nn.Module):
    """Shared implementation; use the named subclasses below.

    Attributes:
      padding: ``"reflect"`` or ``"zero"``.
      norm: ``None`` or ``"instance"`` (after every hidden conv, before its ReLU).
      head_kernel: see :func:`decoder_spec`.
      width: multiplier for hidden channel counts (1.0 = the real architecture).
      dtype: computation dtype; param_dtype: parameter storage dtype.
    """

    padding: str = "reflect"
    norm: str | None = None
    head_kernel: int | None = None
    width: float = 1.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    input_layer: ClassVar[str] = "relu4_1"
    uses_skips: ClassVar[bool] = False

    @property
    def spec(self) -> tuple[Step, ...]:
        return decoder_spec(self.input_layer, skips=self.uses_skips, head_kernel=self.head_kernel)

    @property
    def skip_layers(self) -> tuple[str, ...]:
        """Encoder layers whose features this decoder fuses by AdaIN (deepest first)."""
        return tuple(s.layer for s in self.spec if isinstance(s, SkipStep))

    @property
    def upsampling(self) -> int:
        """Output size / input feature size."""
        return vgg19.STRIDES[self.input_layer]

    def num_params(self) -> int:
        """Exact parameter count at ``width=1`` (from the spec; tests check it against ``init``)."""
        return spec_param_count(self.spec, norm=self.norm)

    def _channels(self, c: int) -> int:
        return c if c == 3 else max(1, int(round(c * self.width)))

    @nn.compact
    def __call__(self, x: Array, skips: Mapping[str, Skip] | None = None, *, start: str | None = None,
                 stop: str | None = None) -> Array:
        """Decode NHWC features of ``input_layer`` to RGB.

        Args:
          x: (N, h, w, C) features (C = the layer's channels at ``width=1``).
          skips: for decoders with :attr:`skip_layers`: ``{layer: features}`` (AdaIN of the decoder
            activations to those features' per-channel mean/std; any spatial size, e.g. the style's
            relu3_1) or ``{layer: fn}`` with ``fn(activations) -> activations`` for custom fusion
            (multi-style blends, masks). During reconstruction training pass the input's own features.
          start, stop: run one segment between skips (teacher-forced training of skip decoders,
            ``train.common.segment_terms``): ``start`` (a skip layer) makes ``x`` that layer's encoder
            features standing in for the activations right after its fusion; ``stop`` (a skip layer)
            returns the activations right before its fusion, in the decoder's normalised units.

        Returns:
          (N, h * s, w * s, 3) RGB, s = :attr:`upsampling`; values around [0, 1], not clamped. With
          ``stop``: the activations before that skip.
        """
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        spec = self.spec
        bounds = [s.layer for s in spec if isinstance(s, SkipStep)]
        for name, layer in (("start", start), ("stop", stop)):
            if layer is not None and layer not in bounds:
                raise ValueError(f"{name}={layer!r} is not a skip of {type(self).__name__} (skips: {bounds})")
        if start is not None:
            spec = spec[spec.index(SkipStep(start)) + 1:]
        if stop is not None:
            spec = spec[: spec.index(SkipStep(stop))]
        first = spec[0]
        if self.width == 1.0 and x.shape[-1] != first.cin:
            raise ValueError(
                f"{type(self).__name__} expects {start or self.input_layer} features with {first.cin} "
                f"channels, got shape {x.shape}"
            )
        missing = [s.layer for s in spec if isinstance(s, SkipStep) and (skips is None or s.layer not in skips)]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs skip features for {missing} (pass skips={{layer: features}})"
            )
        # Hidden activations live in normalised units (VGG features / vgg19.MEAN_ACTIVATION, ~1), as
        # the papers' decoders saw the normalised VGG19; Caffe-scale features (~440 at relu4_1) would
        # make a freshly initialised decoder output values in the hundreds.
        x = x.astype(self.dtype) / vgg19.MEAN_ACTIVATION[start or self.input_layer]
        upsample = False  # a pending x2 upsampling, folded into the convolution that follows it
        for step in spec:
            if isinstance(step, UpStep):
                if upsample:
                    x = upsample2x(x)
                upsample = True
            elif isinstance(step, SkipStep):
                if upsample:
                    x, upsample = upsample2x(x), False
                fuse, scale = skips[step.layer], vgg19.MEAN_ACTIVATION[step.layer]
                # Fusions work in encoder units: AdaIN is scale-equivariant, so convert in and out.
                x = fuse(x * scale) / scale if callable(fuse) else adain(x, fuse.astype(self.dtype) / scale)
            else:
                normed = self.norm is not None and step.relu
                x = Conv(
                    self._channels(step.cout),
                    kernel_size=step.kernel,
                    padding=self.padding,
                    use_bias=not normed,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                    kernel_init=he_init if step.relu else linear_init,
                    bias_init=nn.initializers.zeros if step.relu else nn.initializers.constant(0.5),
                    activation=nn.relu if step.relu and not normed else None,  # fused: in place
                    upsample=upsample,
                    name=step.name,
                )(x)
                upsample = False
                if normed:
                    x = nn.relu(InstanceNorm(dtype=self.dtype, param_dtype=self.param_dtype,
                                             name=f"{step.name}_norm")(x))
        return upsample2x(x) if upsample else x


class AdaINDecoder(_MirrorDecoder):
    """AdaIN decoder (Huang & Belongie 2017), also SANet's: relu4_1 (512 ch) -> RGB.

    9 reflect-padded 3x3 convs 512->256, x2, 256->256 x3, 256->128, x2, 128->128, 128->64, x2,
    64->64, 64->3; ReLU except the last; 3,505,219 parameters. ``apply(variables, feats) -> rgb``.
    """

    input_layer: ClassVar[str] = "relu4_1"


class WCTDecoder(_MirrorDecoder):
    """One of the five WCT decoders (Li et al. 2017): relu{level}_1 -> RGB, the mirror of VGG19 to it.

    Attributes:
      level: 1..5 (parameters: 1,731 / 112,451 / 555,075 / 3,505,219 / 12,944,451).
    """

    level: int = 5

    @property
    def input_layer(self) -> str:  # type: ignore[override]
        if self.level not in (1, 2, 3, 4, 5):
            raise ValueError(f"WCT decoder level must be 1..5, got {self.level}")
        return f"relu{self.level}_1"


class StyleSwapDecoder(_MirrorDecoder):
    """Style-Swap inverse network (Chen & Schmidt 2016): relu3_1 (256 ch) -> RGB.

    The mirror of VGG19 to relu3_1 (5 convs). The released network used instance normalisation, so
    ``norm="instance"`` is the default (conv without bias -> IN with learned scale/shift -> ReLU;
    555,459 parameters); ``norm=None`` gives the plain mirror (555,075). Instance norm uses no batch
    statistics, so the network behaves the same at batch size 1 as in training.
    """

    norm: str | None = "instance"
    input_layer: ClassVar[str] = "relu3_1"


class SkipDecoder(_MirrorDecoder):
    """Hourglass decoder with AdaIN skip fusion: Avatar-Net (default) and AAMS/CBAM (:meth:`aams`).

    The mirror of VGG19 from ``layer``; before ``dec{k}_1`` (k below the input block) the activations
    are AdaIN-ed to the skip features of ``relu{k}_1`` -- the *style's* at transfer time, the
    input's own during reconstruction training. Defaults reproduce Avatar-Net (Sheng et al. 2018):
    reflect padding, relu4_1 input, skips relu3_1/relu2_1/relu1_1, ``dec1_1`` 64->64 + ReLU and a
    7x7 RGB head (3,549,827 parameters).

    Attributes:
      layer: input layer ``relu{b}_1``; the AAMS/CBAM depth variants use relu3_1, relu4_1, relu5_1.
    """

    layer: str = "relu4_1"
    head_kernel: int | None = 7
    uses_skips: ClassVar[bool] = True

    @property
    def input_layer(self) -> str:  # type: ignore[override]
        return self.layer

    @classmethod
    def avatar_net(cls, **kwargs: Any) -> "SkipDecoder":
        """Avatar-Net's decoder: relu4_1, reflect padding, 7x7 head."""
        return cls(**{"layer": "relu4_1", "padding": "reflect", "head_kernel": 7, **kwargs})

    @classmethod
    def aams(cls, layer: str = "relu4_1", **kwargs: Any) -> "SkipDecoder":
        """AAMS's decoder (Yao et al. 2019) at encoder depth ``layer`` (relu3_1 / relu4_1 / relu5_1):
        3x3 RGB head (``dec1_1``), AdaIN skips from every lower ``relu{k}_1``; reflect padding by
        default (the TF code's is zero: ``padding="zero"``)."""
        return cls(**{"layer": layer, "padding": "reflect", "head_kernel": None, **kwargs})
