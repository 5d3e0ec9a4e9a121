"""Training for every learned nst_jax model: ``python -m train.<method>``.

One trainer (:mod:`train.trainer`) shared by all methods; each method module (``train/adain.py``,
``train/sanet.py``, ...) contributes only a small :class:`train.trainer.Method` spec: its config
fields, model init, loss and export card. See ``python -m train.adain --help``.
"""
