"""LoRA through peft (spec §4): rank 16, alpha 32, dropout 0.1 on every block's attention
query/key/value/output dense and feed-forward dense layers; embeddings and LM head fully
trained (``modules_to_save``). ``enabled: false`` trains every parameter instead.

A DPLM-2 Bit model (``lm.objective: bit``) has modules of its own that no pretrained body
holds: the structure head, ``quant2emb`` and the learned ``<cls/eos/mask_struct>`` vectors.
They are always trained fully beside LoRA (:data:`BIT_MODULES_TO_SAVE`,
:data:`BIT_PARAMETERS`), whatever ``modules_to_save`` says.
"""

from __future__ import annotations

import copy
import dataclasses
import logging

from dplm2.config import StageConfig

log = logging.getLogger(__name__)

# Every linear layer of an ESM block: attention.self.{query,key,value}, attention.output.dense,
# intermediate.dense (FFN in) and output.dense (FFN out). Anchored on encoder.layer.<i> so the
# LM head's own ``dense`` (fully trained via modules_to_save) is not matched.
TARGET_REGEX = (
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)"
)


# A bit network's own modules (dplm2.lm.bit.EsmForDPLM2Bit), trained fully under LoRA; the
# three special vectors are bare parameters, which peft's modules_to_save cannot wrap.
BIT_MODULES_TO_SAVE = ("lm_head_struct", "quant2emb")
BIT_PARAMETERS = ("struct_bos_emb", "struct_eos_emb", "struct_mask_emb")


@dataclasses.dataclass(frozen=True)
class LoraConfig(StageConfig):
    """LoRA settings; ``enabled: false`` = full fine-tuning."""

    SECTION = "lm.lora"

    enabled: bool
    rank: int
    alpha: float
    dropout: float
    modules_to_save: tuple[str, ...]


def apply_lora(model, cfg: LoraConfig, seed: int = 0):
    """Inject LoRA into ``model.net`` in place (or unfreeze all); returns ``model``.

    The peft wrapper is kept as a plain attribute (``model._peft``, not a submodule, so the
    parameters are not registered twice) for :func:`merged_copy`. LoRA matrices are drawn
    from ``seed``. The unused ESM contact head
    is frozen either way (DDP requires every trainable parameter to receive a gradient).
    """
    net = model.net
    net.esm.contact_head.requires_grad_(False)
    if not cfg.enabled:
        for name, p in net.named_parameters():
            p.requires_grad_(not name.startswith("esm.contact_head"))
        log.info("LoRA off: training all %d parameters", model.num_parameters(True))
        return model
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    from dplm2.lm.model import embeddings_tied, untie_embeddings

    if embeddings_tied(net):
        # modules_to_save trains separate copies of the embedding and the head: a tied config
        # would re-tie them on load and drop the head's copy, so untie first.
        log.info("LoRA: untying the input embedding and LM head (trained as separate copies)")
        untie_embeddings(net)

    bit = bool(getattr(model, "is_bit", False))
    to_save = list(cfg.modules_to_save)
    if bit:
        to_save += [m for m in BIT_MODULES_TO_SAVE if m not in to_save]
    peft_cfg = PeftLoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=float(cfg.dropout),
        target_modules=TARGET_REGEX,
        modules_to_save=to_save,
        bias="none",
    )
    import torch

    # peft draws lora_A from the global RNG: seed it so a run is reproducible from its config.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(net, peft_cfg)  # modifies ``net`` in place
    if bit:
        for name in BIT_PARAMETERS:
            getattr(net, name).requires_grad_(True)
    object.__setattr__(model, "_peft", peft_model)
    log.info(
        "LoRA r=%d alpha=%s: %d trainable of %d parameters",
        cfg.rank, cfg.alpha, model.num_parameters(True), model.num_parameters(),
    )
    return model


def merged_copy(model):
    """A copy of ``model`` with LoRA merged into the base weights (``model`` is unchanged)."""
    if getattr(model, "_peft", None) is None:
        return model
    clone = copy.deepcopy(model)  # the memo keeps clone._peft and clone.net pointing together
    net = clone._peft.merge_and_unload()
    return type(model)(net)  # DPLM2LM or DPLM2BitLM
