"""DPLM-2 language model: vocabulary, model, warm start, LoRA, diffusion training, sampling.

Light imports only here (torch/transformers load inside the modules that need them).
"""
