"""Sentiment models (MMLatch, MMMIE, baselines), their configs and checkpoints, the datasets
they train on (CMU-MOSI and a synthetic task), training, evaluation and metrics.

Imports torch and `kernels` only, never `realtime`.
"""
