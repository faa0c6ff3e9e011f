"""dplm2: a reproducible workflow around DPLM-2 (Wang et al., ICLR 2025).

Raw structure downloads -> filtered chains -> LFQ structure tokenizer -> token shards ->
multimodal discrete-diffusion protein language model -> generation -> evaluation.
"""

__version__ = "0.1.0"
