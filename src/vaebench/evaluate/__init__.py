"""Evaluation of trained models: disentanglement metrics and friends."""
