"""Style swap (Chen & Schmidt 2016, "Fast Patch-based Style Transfer of Arbitrary Style", Sec. 3) and
Avatar-Net's style decorator (Sheng et al. 2018, Sec. 3.2).

Style swap replaces every content patch by the style patch with the highest normalised
cross-correlation (Chen & Schmidt Sec. 3.1: ``argmax_j <phi_i(C), phi_j(S)> / ||phi_j(S)||``; the
content norm does not change the argmax) and averages overlapping patches. The reference
implementation does it with a convolution whose filters are the normalised style patches, an argmax
one-hot over all style patches, and a transposed convolution with the raw patches. Here the same
numbers are computed in a way that needs neither the patch bank nor the one-hot:

1. **Scores by a pixel Gram, not a patch convolution.** The score of content patch ``p`` and style
   patch ``q`` is ``sum_o <c[p + o], s[q + o]>`` over the k x k offsets ``o``, i.e. a sum along the
   diagonals of the pixel-level Gram matrix ``G = C_flat S_flat^T``. One matmul (C-long dot
   products) plus a separable shifted sum (2k adds) replaces the k^2 C-long dot products per score of
   the convolution: k^2 fewer FLOPs (25x for Avatar-Net's 5x5 patches, 9x for Style-Swap's 3x3).
2. **Chunked over style patches.** ``lax.scan`` walks over blocks of ``R`` rows of style patch
   positions (``R * Ws' ~ chunk_size`` patches, at least one row), computing the Gram of the padded
   content with the ``st (R - 1) + k`` style pixel rows the block needs, and keeps a running
   max / argmax (strictly greater wins, so ties go to the lowest index exactly like one global
   argmax). The block count is rounded up; rows past the end are masked with ``-inf`` so they can
   never win.
3. **Reconstruction by gathering.** The winning patch index per content position is turned into
   ``k^2`` gathers from the style map, one per offset, overlap-added onto the output canvas and
   divided by the (static, numpy-computed) overlap count: no one-hot, no transposed convolution.

**Memory bound** (float32, per batch element; the batch is ``vmap``-ed, so times N): the style and
content maps, plus per chunk
``Hp Wp (st (R - 1) + k) Wsp`` (pixel Gram) ``+ Hp Wo (st (R - 1) + k) Ws'`` (row-summed)
``+ Ho Wo R Ws'`` (scores), i.e. **O(H_c W_c chunk_size)** with a halo factor
``(1 + (k - 1) / (st R))`` -- independent of the number of style patches (no patch bank: patch norms
are a k x k box sum of the style's squared norms). Compute is ``2 H_c W_c (Hs Ws) C`` FLOPs for the
Gram plus ``O(k H_c W_c Hs Ws)`` adds.

Padding: ``"valid"`` (Chen & Schmidt: patches only where they fit; output border positions are
covered by fewer patches and the overlap count accounts for it), ``"reflect"`` or ``"zero"``
(Avatar-Net: the maps are padded by ``(k - 1) // 2`` before / ``k // 2`` after so there is a content
patch centred at every position). ``style_padding`` defaults to ``padding``; Avatar-Net's TF code
reflect-pads the content but zero-pads the style (``extract_image_patches(padding='SAME')``), which
``padding="reflect", style_padding="zero"`` reproduces.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import InputError
from nst_jax.kernels.wct import EPS, ready_with, zca_project, zca_recolor

PADDINGS = ("valid", "reflect", "zero")
INTERPS = ("normalized", "biased")
DEFAULT_CHUNK = 1024
_NORM_EPS = 1e-7  # as Avatar-Net: patches / (||patch|| + 1e-7)
_HIGHEST = jax.lax.Precision.HIGHEST


def region_labels(mask: jax.Array) -> jax.Array:
    """Integer region of every position of a (N, H, W, K) mask: ``argmax`` over K, or ``m >= 0.5`` if K = 1."""
    if mask.ndim == 3:
        mask = mask[..., None]
    if mask.shape[-1] == 1:
        return (mask[..., 0] >= 0.5).astype(jnp.int32)
    return jnp.argmax(mask, axis=-1).astype(jnp.int32)


def patch_swap(content: jax.Array, style: jax.Array, *, patch_size: int = 3, stride: int = 1,
               padding: str = "valid", style_padding: str | None = None,
               chunk_size: int = DEFAULT_CHUNK, content_mask: jax.Array | None = None,
               style_mask: jax.Array | None = None) -> jax.Array:
    """Style swap (Chen & Schmidt 2016, Sec. 3.1), chunked over style patches (see module docstring).

    Args:
      content: (N, H, W, C) features.
      style: (N, Hs, Ws, C) or (1, Hs, Ws, C) features (content batch 1 with style batch N works too).
      patch_size, stride: patch side ``k`` and stride (both maps).
      padding, style_padding: ``"valid" | "reflect" | "zero"`` for the content / style map
        (``style_padding=None``: same as ``padding``).
      chunk_size: style patches scored per step (rounded down to whole rows of patch positions, at
        least one row); ``>=`` the number of style patches means a single chunk.
      content_mask, style_mask: spatial control at feature resolution, (N, H, W, K) and
        (N, Hs, Ws, K). Every position gets the region ``argmax_K`` (K = 1: ``m >= 0.5`` vs the rest);
        a content patch may only take a style patch whose centre lies in the same region (a content
        region with no style patches at all falls back to every patch). ``style_mask`` alone (K = 1)
        restricts the whole bank to its region. For **a style image per region**, swap against each
        style separately and composite with the content masks:
        ``blend_by_masks([patch_swap(c, s_r) for s_r in styles], masks)`` (same total cost as one
        swap against all the styles' patches).

    Returns:
      (N, H, W, C): every position is an average of (overlapping) raw style patches. Positions no
      content patch covers (``"valid"`` with a stride that does not tile the map) are zero.
    """
    k, st = int(patch_size), int(stride)
    style_padding = padding if style_padding is None else style_padding
    for name, value in (("padding", padding), ("style_padding", style_padding)):
        if value not in PADDINGS:
            raise InputError(f"{name} must be one of {PADDINGS}, got {value!r}")
    if k < 1 or st < 1 or int(chunk_size) < 1:
        raise InputError(f"patch_size, stride and chunk_size must be >= 1, got {k}, {st}, {chunk_size}")
    if content.ndim != 4 or style.ndim != 4:
        raise InputError(f"content and style must be NHWC, got {content.shape} and {style.shape}")
    if content.shape[-1] != style.shape[-1]:
        raise InputError(f"content has {content.shape[-1]} channels but style has {style.shape[-1]}")
    for name, x, pad in (("content", content, padding), ("style", style, style_padding)):
        low = k if pad == "valid" else k // 2 + 1 if pad == "reflect" else 1
        if min(x.shape[1:3]) < low:
            raise InputError(f"{name} features {x.shape[1]}x{x.shape[2]} are too small for "
                             f"{k}x{k} patches with {pad!r} padding")
    nc, ns = content.shape[0], style.shape[0]
    if nc != ns and 1 not in (nc, ns):
        raise InputError(f"content batch {nc} and style batch {ns} must match (or one must be 1)")
    if content_mask is not None and style_mask is None:
        raise InputError("content_mask needs a style_mask with the same regions")
    if style_mask is not None:
        _check_mask("style_mask", style_mask, style)
        s_lab = region_labels(style_mask)
        if content_mask is None:
            if style_mask.ndim == 4 and style_mask.shape[-1] != 1:
                raise InputError("style_mask alone must have one channel; pass content_mask for K regions")
            c_lab = jnp.ones(content.shape[:3], jnp.int32)
        else:
            _check_mask("content_mask", content_mask, content)
            kc = 1 if content_mask.ndim == 3 else content_mask.shape[-1]
            ks = 1 if style_mask.ndim == 3 else style_mask.shape[-1]
            if kc != ks:
                raise InputError(f"content_mask has {kc} regions but style_mask has {ks}")
            c_lab = region_labels(content_mask)
        n_labels = max(2, 1 if style_mask.ndim == 3 else style_mask.shape[-1])
    else:
        c_lab = s_lab = None
        n_labels = 0

    one = functools.partial(_swap_one, k=k, st=st, padding=padding, style_padding=style_padding,
                            chunk_size=int(chunk_size), n_labels=n_labels)
    c_axis = 0 if nc == ns or nc != 1 else None
    s_axis = 0 if nc == ns or ns != 1 else None
    if c_axis is None:
        content = content[0]
        c_lab = None if c_lab is None else c_lab[0]
    if s_axis is None:
        style = style[0]
        s_lab = None if s_lab is None else s_lab[0]
    lab_axes = (c_axis, s_axis) if c_lab is not None else (None, None)
    return jax.vmap(one, in_axes=(c_axis, s_axis) + lab_axes)(content, style, c_lab, s_lab)


def _check_mask(name: str, mask: jax.Array, x: jax.Array) -> None:
    if mask.ndim not in (3, 4) or mask.shape[1:3] != x.shape[1:3] or mask.shape[0] not in (1, x.shape[0]):
        raise InputError(f"{name} has shape {mask.shape} but the features are {x.shape}; "
                         "resize masks to the feature map with stats.mask_for_layer")
    if mask.shape[0] != x.shape[0]:
        raise InputError(f"{name} batch {mask.shape[0]} does not match the features' batch {x.shape[0]}")


def _pad(x: jax.Array, k: int, mode: str) -> jax.Array:
    if mode == "valid":
        return x
    before, after = (k - 1) // 2, k // 2
    widths = ((before, after), (before, after)) + ((0, 0),) * (x.ndim - 2)
    return jnp.pad(x, widths, mode="reflect" if mode == "reflect" else "constant")


def _grid(size: int, k: int, st: int, mode: str) -> tuple[int, int]:
    """(number of patch positions, offset of the first patch centre in unpadded coordinates)."""
    padded = size if mode == "valid" else size + k - 1
    return (padded - k) // st + 1, (k - 1) // 2 if mode == "valid" else 0


def _overlap_inverse(h: int, w: int, k: int, st: int, mode: str) -> np.ndarray:
    """1 / (number of patches covering each output position), 0 where none does: (h, w, 1)."""
    ho, _ = _grid(h, k, st, mode)
    wo, _ = _grid(w, k, st, mode)
    hp, wp = (h, w) if mode == "valid" else (h + k - 1, w + k - 1)
    count = np.zeros((hp, wp), np.float32)
    for dy in range(k):
        for dx in range(k):
            count[dy:dy + st * (ho - 1) + 1:st, dx:dx + st * (wo - 1) + 1:st] += 1
    if mode != "valid":
        count = count[(k - 1) // 2:(k - 1) // 2 + h, (k - 1) // 2:(k - 1) // 2 + w]
    return np.where(count > 0, 1.0 / np.maximum(count, 1), 0.0).astype(np.float32)[..., None]


def _swap_one(c, s, c_lab, s_lab, *, k, st, padding, style_padding, chunk_size, n_labels):
    """Style swap of one content map (H, W, C) against one style map (Hs, Ws, C)."""
    h, w, ch = c.shape
    cp, sp = _pad(c, k, padding), _pad(s, k, style_padding)
    hp, wp = cp.shape[:2]
    hsp, wsp = sp.shape[:2]
    ho, c_off = _grid(h, k, st, padding)
    wo, _ = _grid(w, k, st, padding)
    hso, s_off = _grid(s.shape[0], k, st, style_padding)
    wso, _ = _grid(s.shape[1], k, st, style_padding)

    rows = min(max(chunk_size // wso, 1), hso)        # style patch rows per chunk
    n_chunks = -(-hso // rows)
    span = st * (rows - 1) + k                        # style pixel rows one chunk reads
    need = st * (n_chunks * rows - 1) + k
    sp_rows = jnp.pad(sp, ((0, max(need - hsp, 0)), (0, 0), (0, 0)))

    # 1 / ||patch||: a k x k box sum of squared pixel norms, no patch bank.
    sq = jnp.sum(sp * sp, axis=-1)
    norm2 = jax.lax.reduce_window(sq, np.array(0, sq.dtype), jax.lax.add, (k, k), (st, st), "VALID")
    inv_norm = 1.0 / (jnp.sqrt(norm2) + _NORM_EPS)
    # Which (chunk-padded) style patch positions may win, per content position if there are regions.
    valid = jnp.ones((hso, wso), bool)
    pad_rows = ((0, n_chunks * rows - hso), (0, 0))
    inv_norm = jnp.pad(inv_norm, pad_rows)
    valid = jnp.pad(valid, pad_rows)
    if c_lab is not None:
        s_pl = s_lab[s_off:s_off + st * (hso - 1) + 1:st, s_off:s_off + st * (wso - 1) + 1:st]
        c_pl = c_lab[c_off:c_off + st * (ho - 1) + 1:st, c_off:c_off + st * (wo - 1) + 1:st]
        present = jnp.zeros((n_labels,), bool).at[s_pl.reshape(-1)].set(True)
        c_pl = jnp.where(present[c_pl], c_pl, -1)     # region without style patches: any patch
        s_pl = jnp.pad(s_pl, pad_rows, constant_values=-2)

    c_flat = cp.reshape(hp * wp, ch)

    def step(carry, i):
        best, arg = carry
        block = jax.lax.dynamic_slice_in_dim(sp_rows, i * rows * st, span, axis=0)   # (span, Wsp, C)
        gram = jnp.matmul(c_flat, block.reshape(span * wsp, ch).T, precision=_HIGHEST)
        gram = gram.reshape(hp, wp, span, wsp)
        # Separable diagonal box sum: score[py, px, jy, jx] = sum_{dy, dx} G[st py + dy, st px + dx, st jy + dy, st jx + dx].
        tx = sum(gram[:, dx:dx + st * (wo - 1) + 1:st, :, dx:dx + st * (wso - 1) + 1:st] for dx in range(k))
        score = sum(tx[dy:dy + st * (ho - 1) + 1:st, :, dy:dy + st * (rows - 1) + 1:st] for dy in range(k))
        first = i * rows
        score = score * jax.lax.dynamic_slice_in_dim(inv_norm, first, rows)[None, None]
        ok = jax.lax.dynamic_slice_in_dim(valid, first, rows)[None, None]
        if c_lab is not None:
            s_blk = jax.lax.dynamic_slice_in_dim(s_pl, first, rows)[None, None]
            ok = ok & ((c_pl[:, :, None, None] == s_blk) | (c_pl[:, :, None, None] == -1))
        score = jnp.where(ok, score, -jnp.inf).reshape(ho, wo, rows * wso)
        local = jnp.argmax(score, axis=-1)   # one variadic reduce; the max is then a cheap gather
        top = jnp.take_along_axis(score, local[..., None], axis=-1)[..., 0]
        idx = local.astype(jnp.int32) + first * wso
        better = top > best
        return (jnp.where(better, top, best), jnp.where(better, idx, arg)), None

    init = (jnp.full((ho, wo), -jnp.inf, c.dtype), jnp.zeros((ho, wo), jnp.int32))
    (_, arg), _ = jax.lax.scan(step, init, jnp.arange(n_chunks))

    # Overlap-add the winning raw patches, one gather per offset.
    jy, jx = arg // wso, arg % wso
    s_flat = sp.reshape(hsp * wsp, ch)
    canvas = jnp.zeros((hp, wp, ch), c.dtype)
    for dy in range(k):
        for dx in range(k):
            picked = jnp.take(s_flat, (st * jy + dy) * wsp + st * jx + dx, axis=0)   # (Ho, Wo, C)
            canvas = canvas + jax.lax.pad(picked, jnp.zeros((), c.dtype), (
                (dy, hp - dy - st * (ho - 1) - 1, st - 1), (dx, wp - dx - st * (wo - 1) - 1, st - 1), (0, 0, 0)))
    if padding != "valid":
        canvas = canvas[(k - 1) // 2:(k - 1) // 2 + h, (k - 1) // 2:(k - 1) // 2 + w]
    return canvas * _overlap_inverse(h, w, k, st, padding)


def style_decorator(content: jax.Array, style: jax.Array, *, alpha: float | jax.Array = 1.0,
                    patch_size: int = 5, interp: str = "normalized", padding: str = "reflect",
                    style_padding: str | None = None, chunk_size: int = DEFAULT_CHUNK,
                    content_mask: jax.Array | None = None, style_mask: jax.Array | None = None,
                    eps: float = EPS) -> jax.Array:
    """Avatar-Net's style decorator (Sheng et al. 2018, Sec. 3.2; ``style_decorator`` in its code).

    1. ZCA-project content and style with their own whitening (:func:`~nst_jax.kernels.wct.zca_project`);
    2. style-swap the projected content against the projected style (``patch_size`` 5, stride 1,
       reflect padding, normalised cross-correlation);
    3. ``interp="normalized"`` (Avatar-Net's default): blend ``alpha * swapped + (1 - alpha) *
       projected_content`` *before* re-colouring; ``"biased"``: blend the re-coloured result with the
       raw content features after;
    4. re-colour with the style's ZCA colouring kernel and mean (:func:`~nst_jax.kernels.wct.zca_recolor`).

    ``alpha`` may be a traced scalar (no recompilation per value). With ``alpha=0`` and
    ``"normalized"`` this is exactly :func:`~nst_jax.kernels.wct.wct`. Masks restrict the swap to
    matching regions (see :func:`patch_swap`); the projections use global statistics. For a style
    image per region, decorate with each style and composite with ``blend_by_masks``.
    Default ``style_padding`` is ``padding`` (so decorating a style with itself returns it); Avatar-Net's
    TF code zero-pads the style: pass ``style_padding="zero"`` to match it.
    """
    if interp not in INTERPS:
        raise InputError(f"interp must be one of {INTERPS}, got {interp!r}")
    projected_c, _ = zca_project(content, eps=eps)
    projected_s, style_stats = zca_project(ready_with(style, content), eps=eps)
    swapped = patch_swap(projected_c, projected_s, patch_size=patch_size, stride=1, padding=padding,
                         style_padding=style_padding, chunk_size=chunk_size,
                         content_mask=content_mask, style_mask=style_mask)
    if interp == "normalized":
        swapped = alpha * swapped + (1.0 - alpha) * projected_c
    out = zca_recolor(swapped, style_stats)
    if interp == "biased":
        out = alpha * out + (1.0 - alpha) * content
    return out
