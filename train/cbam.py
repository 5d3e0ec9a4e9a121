"""Train the CBAM attention autoencoder (seed 000): ``python -m train.cbam --depth conv3_1|conv4_1|conv5_1``.

Seed 000 replaces AAMS's self-attention by CBAM (channel gate, then spatial gate, ``A = F + F''``,
Eqs. 1-3) and trains the reconstruction autoencoder at three encoder depths. Loss (Eqs. 4-6)::

    L     = lambda_con L_con + lambda_att L_att + lambda_tv L_tv
    L_con = sum_{l in relu1_1..depth} || phi_l(x') - phi_l(x) ||_2^2 + lambda_p || x' - x ||_2^2
    L_att = || A_x ||_1

"other parameters as Yao et al." (AAMS): lambda_p = 10, lambda_tv = 10, lambda_att = 6, Adam
(beta2 0.99, epsilon 1.0), batch 8; the seed trains 10,000 iterations. ``A_x`` is CBAM's
multiplicative attention ``Mc * Ms`` (:class:`nst_jax.modules.attention.CBAM`), the part of
``A = F + Mc Ms F`` that depends on the parameters.

    for d in conv3_1 conv4_1 conv5_1; do python -m train.cbam --depth $d --export weights/cbam_$d.npz; done
"""

from __future__ import annotations

import sys

from train.aams import _CPU_OPT, _OPT, Config, make_method  # noqa: F401  (Config: the same fields as AAMS)
from train.trainer import main

METHOD = make_method("cbam", name="cbam", description=__doc__, paper=dict(steps=10_000, **_OPT), cpu=_CPU_OPT)

if __name__ == "__main__":
    sys.exit(main(METHOD))
