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
