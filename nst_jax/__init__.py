"""nst_jax"""
