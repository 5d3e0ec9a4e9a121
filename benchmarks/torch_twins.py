"""PyTorch eager twins of nst_jax computations, with the same weights, for side-by-side timing.

Only imported when the ``parity`` extra (torch) is installed. Each twin mirrors the JAX computation
op for op (same layers, same losses, same preprocessing) in NCHW; ``channels_last`` is used where
it makes torch faster, so the comparison is against torch at its best.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nst_jax import vgg19


class TorchVGG:
    """VGG19 convolutions from nst_jax params (HWIO, RGB input, folded preprocessing)."""

    def __init__(self, params, *, padding: str = "zero", pool: str = "max", channels_last: bool = True):
        self.padding, self.pool = padding, pool
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.scale = torch.tensor(np.asarray(params["input"]["scale"])).view(1, 3, 1, 1)
        self.offset = torch.tensor(np.asarray(params["input"]["offset"])).view(1, 3, 1, 1)
        self.convs = {}
        for name in vgg19.CONV_NAMES:
            if name in params:
                k = torch.tensor(np.asarray(params[name]["kernel"]).transpose(3, 2, 0, 1).copy())
                self.convs[name] = (k.contiguous(memory_format=self.fmt), torch.tensor(np.asarray(params[name]["bias"])))

    def features(self, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        last = vgg19.LAYERS.index(vgg19.deepest(layers))
        x = (x * self.scale + self.offset).contiguous(memory_format=self.fmt)
        out = {}
        for name in vgg19.LAYERS[: last + 1]:
            if name.startswith("conv"):
                w, b = self.convs[name]
                if self.padding == "reflect":
                    x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), w, b)
                else:
                    x = F.conv2d(x, w, b, padding=1)
            elif name.startswith("relu"):
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, 2) if self.pool == "max" else F.avg_pool2d(x, 2)
            if name in layers:
                out[name] = x
        return out


def gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def gatys_value_and_grad(vgg: TorchVGG, content_targets, gram_targets, weights, content_weight, style_weight):
    """The twin of nst_jax.optimize.make_loss_fn + value_and_grad (no TV, no masks)."""
    layers = list(dict.fromkeys(list(content_targets) + list(gram_targets)))

    def run(x: torch.Tensor):
        x = x.detach().requires_grad_(True)
        feats = vgg.features(x, layers)
        content = sum(F.mse_loss(feats[k], t) for k, t in content_targets.items())
        style = sum(weights[k] * F.mse_loss(gram(feats[k]), t) for k, t in gram_targets.items())
        loss = content_weight * content + style_weight * style
        (grad,) = torch.autograd.grad(loss, x)
        return loss.detach(), grad

    return run


# ------------------------------------------------------------------ feed-forward twins (runtime.py)
# Twins of nst_jax.methods.{adain,wct,sanet} forwards, op for op: the same decoder spec table
# (nst_jax.modules.decoders.decoder_spec), the same statistics conventions (biased variance +
# 1e-5 for AdaIN; centred covariance / (HW - 1), eigenvalues <= 1e-5 masked for WCT), the same
# alpha blends. Inputs/outputs are NCHW float32 in [0, 1] (decoder outputs unclamped).

EPS = 1e-5


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, padding: str) -> torch.Tensor:
    pad = w.shape[-1] // 2
    if pad and padding == "reflect":
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), w, b)
    return F.conv2d(x, w, b, padding=pad)


def _torch_conv_params(tree, fmt):
    k = torch.tensor(np.asarray(tree["kernel"]).transpose(3, 2, 0, 1).copy()).contiguous(memory_format=fmt)
    b = torch.tensor(np.asarray(tree["bias"])) if "bias" in tree else None
    return k, b


class TorchDecoder:
    """A VGG-mirror decoder (``nst_jax.modules.decoders``) from its flax params: the steps of
    ``decoder_spec(layer, skips=..., head_kernel=...)``, reflect- or zero-padded 3x3 convs, ReLU,
    nearest x2 upsampling, optional AdaIN skips (callables or features)."""

    def __init__(self, params, layer: str, *, padding: str = "reflect", skips: bool = False,
                 head_kernel: int | None = None, channels_last: bool = True):
        from nst_jax.modules.decoders import decoder_spec

        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.padding = padding
        from nst_jax.vgg19 import MEAN_ACTIVATION

        self.scale = MEAN_ACTIVATION  # the decoders work in normalised units (see modules.decoders)
        self.layer = layer
        self.steps = decoder_spec(layer, skips=skips, head_kernel=head_kernel)
        self.convs = {s.name: _torch_conv_params(params[s.name], self.fmt) for s in self.steps if hasattr(s, "name")}
        # Instance norm after a hidden conv (the Style-Swap inverse network's default): learned scale, shift.
        self.norms = {k[: -len("_norm")]: (torch.tensor(np.asarray(v["scale"]))[None, :, None, None],
                                           torch.tensor(np.asarray(v["bias"]))[None, :, None, None])
                      for k, v in params.items() if k.endswith("_norm")}

    def __call__(self, x: torch.Tensor, skips=None) -> torch.Tensor:
        x = x.contiguous(memory_format=self.fmt) / self.scale[self.layer]
        for step in self.steps:
            kind = type(step).__name__
            if kind == "UpStep":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            elif kind == "SkipStep":
                fuse, scale = skips[step.layer], self.scale[step.layer]
                x = fuse(x * scale) / scale if callable(fuse) else adain(x, fuse / scale)
            else:
                w, b = self.convs[step.name]
                x = _conv(x, w, b, self.padding)
                if step.name in self.norms:
                    scale, shift = self.norms[step.name]
                    mean, std = mean_std(x)
                    x = (x - mean) / std * scale + shift
                if step.relu:
                    x = F.relu(x)
        return x


def mean_std(x: torch.Tensor, eps: float = EPS):
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    return mean, torch.sqrt(var + eps)


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    mc, sc = mean_std(content)
    ms, ss = mean_std(style)
    return (content - mc) * (ss / sc) + ms


def _moments(x: torch.Tensor):
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    mean = flat.mean(dim=2)
    centred = flat - mean[:, :, None]
    cov = centred @ centred.transpose(1, 2) / max(h * w - 1, 1)
    return mean, cov


def _sym_power(cov: torch.Tensor, p: float, eps: float = EPS) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    keep = vals > eps
    d = torch.where(keep, torch.where(keep, vals, torch.ones_like(vals)) ** p, torch.zeros_like(vals))
    return (vecs * d[:, None, :]) @ vecs.transpose(1, 2)


def _centred_gram(x: torch.Tensor):
    """``nst_jax.kernels.wct._centred_gram``: centred rows (N, C, P), mean, lifted position Gram."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    mean = flat.mean(dim=2)
    centred = flat - mean[:, :, None]
    gram = centred.transpose(1, 2) @ centred / (h * w - 1)
    lift = torch.diagonal(gram, dim1=-2, dim2=-1).sum(-1) / (h * w) ** 2
    return centred, mean, gram + lift[:, None, None]


def wct(content: torch.Tensor, style: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``nst_jax.kernels.wct.wct``: one fused C x C transform, one matmul over the features (or, with
    no more positions than channels, the same transform through the positions' Gram matrices)."""
    n, c, h, w = content.shape
    if h * w <= c:
        xc, _, gram_c = _centred_gram(content)
        whitened = xc @ _sym_power(gram_c, -0.5, eps)  # (N, C, P)
        if style.shape[2] * style.shape[3] <= c:
            xs, ms, gram_s = _centred_gram(style)
            coloring = xs @ _sym_power(gram_s, -0.5, eps) @ xs.transpose(1, 2) / (xs.shape[2] - 1)
        else:
            ms, cov_s = _moments(style)
            coloring = _sym_power(cov_s, 0.5, eps)
        return (coloring @ whitened + ms[:, :, None]).reshape(n, c, h, w)
    mc, cov_c = _moments(content)
    ms, cov_s = _moments(style)
    transform = _sym_power(cov_s, 0.5, eps) @ _sym_power(cov_c, -0.5, eps)
    flat = content.reshape(n, c, h * w)
    bias = ms - (transform @ mc[:, :, None])[:, :, 0]
    return (transform @ flat + bias[:, :, None]).reshape(n, c, h, w)


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 3, 1, 2)))


class _OneLayerTwin:
    """Reflect-padded encoder to ``LAYER``, ``transform(c, s)``, alpha blend with the content's
    features, the decoder from ``LAYER`` (AdaIN, Style-Swap)."""

    LAYER: str

    def __init__(self, params):
        self.vgg = TorchVGG(params["vgg"], padding="reflect", pool="max")
        self.decoder = TorchDecoder(params["decoder"], self.LAYER)

    def transform(self, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        s = self.vgg.features(style, (self.LAYER,))[self.LAYER]
        c = self.vgg.features(content, (self.LAYER,))[self.LAYER]
        return self.decoder(alpha * self.transform(c, s) + (1.0 - alpha) * c)


class TorchAdaIN(_OneLayerTwin):
    """``nst_jax.methods.adain``: encoder (relu4_1) + AdaIN + alpha blend + AdaIN decoder."""

    LAYER = "relu4_1"

    def transform(self, c, s):
        return adain(c, s)


class TorchWCT:
    """``nst_jax.methods.wct``: style encoded at relu5_1..relu1_1 once, then per level encode the
    current image, WCT + alpha blend, decode (five decoders, coarse to fine)."""

    LEVELS = (5, 4, 3, 2, 1)

    def __init__(self, params, levels=LEVELS):
        self.levels = tuple(levels)
        self.vgg = TorchVGG(params["vgg"], padding="reflect", pool="max")
        self.decoders = {k: TorchDecoder(params["decoders"][f"relu{k}_1"], f"relu{k}_1") for k in self.levels}

    @torch.no_grad()
    def __call__(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        layers = tuple(f"relu{k}_1" for k in self.levels)
        s = self.vgg.features(style, layers)
        x = content
        for k in self.levels:
            layer = f"relu{k}_1"
            c = self.vgg.features(x, (layer,))[layer]
            t = alpha * wct(c, s[layer]) + (1.0 - alpha) * c
            x = self.decoders[k](t)
        return x


class TorchSANet:
    """``nst_jax.methods.sanet``: SANet transform (relu4_1 [+ relu5_1 upsampled, merge conv]) of the
    content with the style (and with itself, the alpha = 0 end, when alpha < 1), alpha blend, AdaIN decoder. The
    attention is one unchunked softmax (fine at 256/512 px)."""

    def __init__(self, params, multi_level: bool = True, channels_last: bool = True):
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.multi_level = multi_level
        self.layers = ("relu4_1", "relu5_1") if multi_level else ("relu4_1",)
        self.vgg = TorchVGG(params["vgg"], padding="reflect", pool="max")
        tp = params["transform"]
        self.sanets = {layer: {k: _torch_conv_params(tp[f"sanet{layer[4:]}"][k], self.fmt)
                               for k in ("f", "g", "h", "out")} for layer in self.layers}
        self.merge = _torch_conv_params(tp["merge"], self.fmt) if multi_level else None
        self.decoder = TorchDecoder(params["decoder"], "relu4_1")

    @staticmethod
    def _mvn(x):
        mean, std = mean_std(x)
        return (x - mean) / std

    def _sanet(self, p, content, style):
        n, c, h, w = content.shape
        q = F.conv2d(self._mvn(content), *p["f"]).reshape(n, c, -1).transpose(1, 2)  # (n, Lq, C)
        k = F.conv2d(self._mvn(style), *p["g"]).reshape(n, c, -1)  # (n, C, Lk)
        v = F.conv2d(style, *p["h"]).reshape(n, c, -1)  # (n, C, Lk)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # (n, Lq, Lk)
        out = torch.bmm(v, attn.transpose(1, 2)).reshape(n, c, h, w)
        return content + F.conv2d(out, *p["out"])

    def transform(self, c, s):
        out4 = self._sanet(self.sanets["relu4_1"], c["relu4_1"], s["relu4_1"])
        if not self.multi_level:
            return out4
        out5 = F.interpolate(self._sanet(self.sanets["relu5_1"], c["relu5_1"], s["relu5_1"]), scale_factor=2,
                             mode="nearest")
        h, w = out4.shape[2:]
        out5 = out5[:, :, :h, :w]
        if out5.shape[2:] != out4.shape[2:]:
            out5 = F.pad(out5, (0, w - out5.shape[3], 0, h - out5.shape[2]), mode="replicate")
        return _conv(out4 + out5, *self.merge, "reflect")

    @torch.no_grad()
    def __call__(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        s = self.vgg.features(style, self.layers)
        c = self.vgg.features(content, self.layers)
        t = self.transform(c, s)
        if alpha != 1.0:  # as in nst_jax: SANet(c, c) only when it has weight
            t = alpha * t + (1.0 - alpha) * self.transform(c, c)
        return self.decoder(t)


def patch_swap(c: torch.Tensor, s: torch.Tensor, k: int) -> torch.Tensor:
    """``nst_jax.kernels.patch_swap`` (reflect padding, stride 1) computed as the reference
    implementations do (Chen & Schmidt's Torch code, Avatar-Net's TF code, their PyTorch ports): the
    normalised style patches as the filters of a convolution over the content, an argmax one-hot
    over all of them, a transposed convolution with the raw patches, divided by the overlap count.
    nst_jax scores with a pixel Gram and gathers instead: the same argmax with k^2 fewer FLOPs."""
    h, w = c.shape[2:]
    before, after = (k - 1) // 2, k // 2
    pad = (before, after, before, after)
    cp, sp = F.pad(c, pad, mode="reflect"), F.pad(s, pad, mode="reflect")
    patches = F.unfold(sp, k)[0].t().reshape(-1, s.shape[1], k, k)  # (L, C, k, k)
    inv_norm = 1.0 / (patches.flatten(1).norm(dim=1) + 1e-7)
    scores = F.conv2d(cp, patches * inv_norm[:, None, None, None])  # (1, L, H, W)
    onehot = torch.zeros_like(scores).scatter_(1, scores.argmax(1, keepdim=True), 1.0)
    out = F.conv_transpose2d(onehot, patches)
    count = F.conv_transpose2d(torch.ones(1, 1, h, w), torch.ones(1, 1, k, k))
    return (out / count)[:, :, before:before + h, before:before + w]


class TorchStyleSwap(_OneLayerTwin):
    """``nst_jax.methods.style_swap``: relu3_1, 3x3 :func:`patch_swap`, alpha blend, inverse network."""

    LAYER = "relu3_1"

    def transform(self, c, s):
        return patch_swap(c, s, 3)


class TorchAvatar:
    """``nst_jax.methods.avatar``: the style decorator at relu4_1 (ZCA projections with the masked
    eigendecomposition, 5x5 :func:`patch_swap` of the projections, blend, re-colouring with the style's
    kernel and mean), then the hourglass decoder with AdaIN skips to the style's relu3_1..relu1_1."""

    SKIPS = ("relu3_1", "relu2_1", "relu1_1")

    def __init__(self, params, patch_size: int = 5):
        self.k = patch_size
        self.vgg = TorchVGG(params["vgg"], padding="reflect", pool="max")
        self.decoder = TorchDecoder(params["decoder"], "relu4_1", skips=True, head_kernel=7)

    @staticmethod
    def _project(x: torch.Tensor, power: float):
        mean, cov = _moments(x)
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w) - mean[:, :, None]
        return (_sym_power(cov, power) @ flat).reshape(n, c, h, w), mean, cov

    @torch.no_grad()
    def __call__(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        feats = self.vgg.features(style, ("relu4_1", *self.SKIPS))
        c = self.vgg.features(content, ("relu4_1",))["relu4_1"]
        pc, _, _ = self._project(c, -0.5)
        ps, mean_s, cov_s = self._project(feats["relu4_1"], -0.5)
        t = alpha * patch_swap(pc, ps, self.k) + (1.0 - alpha) * pc
        n, ch, h, w = t.shape
        t = (_sym_power(cov_s, 0.5) @ t.reshape(n, ch, h * w) + mean_s[:, :, None]).reshape(n, ch, h, w)
        return self.decoder(t, {layer: feats[layer] for layer in self.SKIPS})


FEEDFORWARD_TWINS = {"adain": TorchAdaIN, "wct": TorchWCT, "sanet": TorchSANet, "style_swap": TorchStyleSwap,
                     "avatar": TorchAvatar,
                     "sanet_r41": lambda params: TorchSANet(params, multi_level=False)}
"""Method name -> twin class (``twin(params)(content, style, alpha)``; NCHW tensors)."""
