"""DPLM-2 Bit (DPLM-2.1, Hsieh et al. 2025): structure tokens predicted as their 13 LFQ bits.

The facts, read from the reference (bytedance/dplm ``dplm2_bit.py``,
``modules/dplm2_bit_modeling_esm.py``; released ``airkingbd/dplm2_bit_650m``):

* network (:class:`EsmForDPLM2Bit`, the reference's tensor names): the DPLM-2 ESM body with a
  **33-token** word embedding (ESM's alphabet; the 8229-id token space of the inputs is
  unchanged), ``lm_head`` with 33 outputs (amino acids), ``lm_head_struct`` with 26 outputs
  per position read as 13 bits x 2 classes (flat index ``2j + c``: class c of bit j, bit 0
  the most significant), ``quant2emb`` (Linear 13 -> hidden) and learned ``struct_bos_emb``,
  ``struct_eos_emb``, ``struct_mask_emb`` vectors;
* structure input: the code's +-1 bit vector (``id - 36`` read most significant bit first,
  two's complement for the special ids below 36, exactly as the reference's
  ``get_codebook_entry``) through ``quant2emb``; column 0 is replaced by the bos vector,
  ``<eos_struct>`` and ``<mask_struct>`` positions by theirs (``<unk_struct>`` keeps the
  projection of its all-ones bit vector, as in the reference);
* amino-acid input: the ESM embedding of the amino-acid half with ESM's token-dropout
  rescaling over that half, then a second rescaling over the whole row (mask fraction of
  ``<mask>`` among the row's non-pad ids), which also scales the structure half; pad rows 0.
  With ``token_dropout`` off in the config (``dplm2_token_dropout_passes`` 0) neither pass;
* positions, attention bias and body: as DPLM-2 (:class:`dplm2.lm.model.DPLM2LM`).

The code <-> bits map is parameter-free (LFQ has no codebook table): the structure tokenizer's
weights are **not** needed to run a bit model, only its convention (13 bits, most significant
first, ``dplm2.tokenizer.quantizer.indices_to_bits``), which the model folder records
(``dplm2_bit.codebook_bits``) and the tokenizer must share (``codebook_bits: 13``). The
reference loads the whole structure tokenizer for these two lines of arithmetic.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dplm2.io.hub import model_files
from dplm2.lm.model import (
    TOKEN_DROPOUT_PASSES,
    DPLM2LM,
    _active,
    official_token_dropout,
)
from dplm2.lm.objective import BIT_DPLM_TYPE, BIT_KEY
from dplm2.lm.vocab import (
    LAYOUT_FILE,
    MASK,
    N_AA,
    N_CODES,
    PAD,
    STRUCT_EOS,
    STRUCT_MASK,
    STRUCT_OFFSET,
    DPLM2Vocab,
)

log = logging.getLogger(__name__)

N_BITS = 13  #: LFQ bits per structure code (2 ** 13 = 8192 codes)
assert 2**N_BITS == N_CODES
#: Released layout's class name (its registry name and our config marker: dplm2.lm.objective).
BIT_ARCHITECTURE = "EsmForDPLM2Bit"
#: Amino-acid ids the reference's bit decoding allows: ``logits[..., :4]`` and
#: ``logits[..., 24:]`` are set to -inf, leaving the 20 standard residues (ids 4..23).
BIT_AA_ALLOWED = slice(4, 24)


def _weights(device) -> torch.Tensor:
    return 2 ** torch.arange(N_BITS - 1, -1, -1, device=device)  # MSB first


def tokens_to_bits(ids: torch.Tensor) -> torch.Tensor:
    """Structure ids (...) -> (..., 13) long 0/1 bits of ``id - 36``, most significant first
    (two's complement for ids below 36, as the reference computes it)."""
    return ((ids.long() - STRUCT_OFFSET)[..., None] & _weights(ids.device) != 0).long()


def bits_to_tokens(bits: torch.Tensor) -> torch.Tensor:
    """(..., 13) 0/1 bits -> structure ids ``36 + sum_j bit_j 2^(12-j)``."""
    return STRUCT_OFFSET + (bits.long() * _weights(bits.device)).sum(-1)


def tokens_to_quant(ids: torch.Tensor) -> torch.Tensor:
    """Structure ids (...) -> (..., 13) float +-1: the quantized LFQ feature (the reference's
    ``quantize.get_codebook_entry(ids - 36)``)."""
    return tokens_to_bits(ids).float() * 2.0 - 1.0


def bit_esm_config(hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
                   dropout: float = 0.0, max_position_embeddings: int = 1026,
                   token_dropout_passes: int = 2, **extra):
    """``EsmConfig`` of a bit network (33-token embedding), marked :data:`BIT_KEY`."""
    from transformers import EsmConfig

    kw = dict(emb_layer_norm_before=False, layer_norm_eps=1e-5)
    kw.update(extra)
    cfg = EsmConfig(
        vocab_size=N_AA, hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size,
        hidden_dropout_prob=float(dropout), attention_probs_dropout_prob=float(dropout),
        max_position_embeddings=max_position_embeddings, position_embedding_type="rotary",
        pad_token_id=PAD, mask_token_id=MASK, token_dropout=False, tie_word_embeddings=False,
        **kw,
    )
    return mark_bit(cfg, token_dropout_passes)


def mark_bit(cfg, token_dropout_passes: int | None = None):
    """Put the bit layout into an ``EsmConfig`` (in place; returned)."""
    cfg.vocab_size = N_AA
    cfg.token_dropout = False  # the rescaling is done by DPLM2BitLM
    cfg.tie_word_embeddings = False
    cfg.dplm2 = DPLM2Vocab().layout()
    setattr(cfg, BIT_KEY, {"codebook_bits": N_BITS})
    if token_dropout_passes is not None:
        if token_dropout_passes < 0:
            raise ValueError(f"token_dropout_passes must be >= 0, got {token_dropout_passes}")
        setattr(cfg, TOKEN_DROPOUT_PASSES, int(token_dropout_passes))
    return cfg


def is_bit_config(cfg) -> bool:
    return getattr(cfg, BIT_KEY, None) is not None


class EsmForDPLM2Bit(nn.Module):
    """The bit network, with the reference's tensor names (``esm.*``, ``lm_head.*``,
    ``lm_head_struct.*``, ``struct_{bos,eos,mask}_emb``, ``quant2emb.*``).

    Initialisation as the reference's: heads normal(0, initializer_range) with zero biases
    (transformers' ``init_weights``), ``quant2emb`` PyTorch's default Linear init, the three
    special vectors standard normal.
    """

    base_model_prefix = "esm"  # read by peft/transformers when LoRA is injected

    def __init__(self, config) -> None:
        super().__init__()
        from transformers.models.esm.modeling_esm import EsmLMHead, EsmModel

        if config.vocab_size != N_AA:
            raise ValueError(f"a bit network has a {N_AA}-token embedding, got {config.vocab_size}")
        bits = int((getattr(config, BIT_KEY, None) or {}).get("codebook_bits", N_BITS))
        if bits != N_BITS:
            raise ValueError(f"{bits} structure bits: this vocabulary has {N_BITS}")
        self.config = config
        self.esm = EsmModel(config, add_pooling_layer=False)
        self.lm_head = EsmLMHead(config)
        struct_cfg = copy.deepcopy(config)
        struct_cfg.vocab_size = 2 * N_BITS
        self.lm_head_struct = EsmLMHead(struct_cfg)
        for head in (self.lm_head, self.lm_head_struct):
            for lin in (head.dense, head.decoder):
                nn.init.normal_(lin.weight, std=config.initializer_range)
            nn.init.zeros_(head.dense.bias)
            nn.init.zeros_(head.bias)
        h = config.hidden_size
        self.struct_bos_emb = nn.Parameter(torch.randn(h))
        self.struct_eos_emb = nn.Parameter(torch.randn(h))
        self.struct_mask_emb = nn.Parameter(torch.randn(h))
        self.quant2emb = nn.Linear(N_BITS, h)

    def set_attn_implementation(self, name: str) -> None:
        self.esm.set_attn_implementation(name)


class BitSelected(NamedTuple):
    """Logits at selected positions: ``struct`` (Ns, 13, 2) bit logits, ``aa`` (Na, 33)."""

    struct: torch.Tensor
    aa: torch.Tensor


class DPLM2BitLM(DPLM2LM):
    """DPLM-2 Bit around :class:`EsmForDPLM2Bit`: same inputs (8229-id two-half rows), same
    body as :class:`DPLM2LM`; its own input embedding and two heads."""

    is_bit = True

    def __init__(self, net: nn.Module) -> None:
        nn.Module.__init__(self)
        if not is_bit_config(net.config):
            raise ValueError("not a DPLM-2 Bit network (config lacks dplm2_bit)")
        self.net = net
        self.vocab = DPLM2Vocab()

    def _embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        net = self.net
        width = input_ids.shape[1] // 2
        st_ids, aa_ids = input_ids[:, :width], input_ids[:, width:]
        passes = int(getattr(self.config, TOKEN_DROPOUT_PASSES, 0) or 0)
        if passes not in (0, 2):
            raise ValueError(f"a bit model applies 0 or 2 token-dropout passes, not {passes}")
        aa = net.esm.embeddings.word_embeddings(aa_ids.clamp(max=N_AA - 1))  # (B, W, H)
        if passes:
            aa = official_token_dropout(aa, aa_ids)  # first pass: amino-acid half
        quant2emb = _active(net.quant2emb)
        st = quant2emb(tokens_to_quant(st_ids).to(aa.dtype)).to(aa.dtype)  # (B, W, H)
        st = st.clone()
        st[:, 0] = net.struct_bos_emb.to(st.dtype)
        st = torch.where((st_ids == STRUCT_EOS)[..., None],
                         net.struct_eos_emb.to(st.dtype), st)
        st = torch.where((st_ids == STRUCT_MASK)[..., None],
                         net.struct_mask_emb.to(st.dtype), st)
        emb = torch.cat([st, aa], dim=1)  # (B, N, H)
        if passes:
            emb = official_token_dropout(emb, input_ids)  # second pass: whole row
        return emb * (input_ids != PAD)[..., None].to(emb.dtype)

    # -- heads ---------------------------------------------------------------------------
    def aa_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., 33) amino-acid logits."""
        return _active(self.net.lm_head)(hidden)

    def struct_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., 13, 2) bit logits (flat head output ``2j + c``)."""
        out = _active(self.net.lm_head_struct)(hidden)
        return out.reshape(*out.shape[:-1], N_BITS, 2)

    def forward(self, input_ids, single_modality=None, select=None):
        """``select`` given: :class:`BitSelected` at those positions; else a pair
        ``(struct (B, W, 13, 2), aa (B, W, 33))`` over the two halves."""
        h = self.hidden_states(input_ids, single_modality)
        width = input_ids.shape[1] // 2
        if select is not None:
            return BitSelected(struct=self.struct_logits(h[:, :width][select[:, :width]]),
                               aa=self.aa_logits(h[:, width:][select[:, width:]]))
        return self.struct_logits(h[:, :width]), self.aa_logits(h[:, width:])

    def vocab_log_probs(self, hidden):  # pragma: no cover - guard
        raise TypeError("a DPLM-2 Bit model has no 8229-id head (use aa_logits/struct_logits)")

    @torch.no_grad()
    def argmax_tokens(self, input_ids: torch.Tensor, select: torch.Tensor,
                      single_modality: torch.Tensor | None = None) -> torch.Tensor:
        """Greedy prediction at ``select`` (B, N) in 8229-id tokens (self-mixup): structure
        ids from the argmax bits, amino acids the argmax over the 33 ids."""
        out = self(input_ids, single_modality, select=select)
        width = input_ids.shape[1] // 2
        pred = input_ids.clone()
        pred[:, :width][select[:, :width]] = bits_to_tokens(out.struct.argmax(-1))
        pred[:, width:][select[:, width:]] = out.aa.argmax(-1)
        return pred

    # -- save / load ---------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """config.json + model.safetensors + vocabulary files (no LoRA: merge first)."""
        from safetensors.torch import save_file

        if any("lora_" in n for n, _ in self.net.named_parameters()):
            raise ValueError("save_pretrained: merge LoRA first (dplm2.lm.lora.merged_copy)")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [BIT_ARCHITECTURE]
        self.config.save_pretrained(folder)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        from dplm2.io.weights import record_checksum

        record_checksum(folder / "model.safetensors")
        self.vocab.save(folder)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, attn_implementation: str = "sdpa",
                        **kwargs) -> DPLM2BitLM:
        from safetensors.torch import load_file
        from transformers import EsmConfig

        folder = Path(folder)
        cfg = EsmConfig.from_pretrained(str(folder))
        if not is_bit_config(cfg):
            raise ValueError(f"{folder}: not a DPLM-2 Bit model folder")
        DPLM2Vocab.load(folder)
        net = EsmForDPLM2Bit(cfg)
        from dplm2.io.weights import load_error, verify_weights

        weights = folder / "model.safetensors"
        verify_weights(weights)
        try:
            state = load_file(str(weights))
        except Exception as exc:  # SafetensorError names no file
            raise load_error(weights, exc) from exc
        net.load_state_dict(state, strict=True)
        net.set_attn_implementation(attn_implementation)
        return cls(net)


def is_bit_folder(folder: str | os.PathLike) -> bool:
    """True for a model folder of this project holding a bit model."""
    path = Path(folder) / "config.json"
    if not (Path(folder) / LAYOUT_FILE).is_file() or not path.is_file():
        return False
    return json.loads(path.read_text()).get(BIT_KEY) is not None


def tiny_bit_model(hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0,
                   token_dropout_passes: int = 2) -> DPLM2BitLM:
    """A small random bit model (tests, benches)."""
    torch.manual_seed(seed)
    cfg = bit_esm_config(hidden, layers, heads, 2 * hidden,
                         token_dropout_passes=token_dropout_passes)
    return DPLM2BitLM(EsmForDPLM2Bit(cfg))


# -- decoding ---------------------------------------------------------------------------------
def choose_aa(logits: torch.Tensor, temp: float | None, top_p: float, banned: torch.Tensor | None,
              generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's bit-model amino-acid choice on (m, 33) logits: all but the 20 standard
    residues set to -inf (and ``banned`` amino-acid ids), top-p on those logits, then
    argmax (``temp`` None: score = log-softmax of the filtered logits, i.e. renormalised over
    the nucleus) or a sample at ``temp`` (score = its log-probability under the tempered,
    filtered distribution). Returns (ids (m,), scores (m,))."""
    from dplm2.lm.sampling import top_p_filter

    lp = logits.float()
    keep = torch.zeros(N_AA, dtype=torch.bool, device=lp.device)
    keep[BIT_AA_ALLOWED] = True
    if banned is not None:
        keep &= ~banned[:N_AA].to(lp.device)
    lp = lp.masked_fill(~keep, float("-inf"))
    lp = top_p_filter(lp.log_softmax(-1), top_p)
    if temp is None:
        score, tok = lp.log_softmax(-1).max(-1)
        return tok, score
    lp = (lp / temp).log_softmax(-1)
    tok = torch.multinomial(lp.exp(), 1, generator=generator).squeeze(-1)
    return tok, lp.gather(-1, tok[:, None]).squeeze(-1)


def choose_struct(logits: torch.Tensor, temp: float | None,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's structure choice on (m, 13, 2) bit logits: per bit argmax or a sample
    at ``temp``; token = 36 + sum_j bit_j 2^(12-j), score = sum of the chosen bits'
    log-probabilities (under the tempered distribution when sampling)."""
    lp = logits.float()
    if temp is not None:
        lp = lp / temp
    lp = lp.log_softmax(-1)  # (m, 13, 2)
    if temp is None:
        score, bits = lp.max(-1)
    else:
        p1 = lp[..., 1].exp()
        u = torch.rand(p1.shape, generator=generator, device=p1.device)
        bits = (u < p1).long()
        score = lp.gather(-1, bits[..., None]).squeeze(-1)
    return bits_to_tokens(bits), score.sum(-1)


# -- released layout ---------------------------------------------------------------------------
def load_official_bit(name_or_path: str | os.PathLike, *, device="cpu",
                      cache_dir: str | None = None, token_dropout_passes: int | None = None,
                      attn_implementation: str = "sdpa") -> DPLM2BitLM:
    """A released DPLM-2 Bit checkpoint (``airkingbd/dplm2_bit_650m`` or a folder in its
    layout: config.json with ``dplm_type: dplm2_bit_esm``, 33-token vocabulary, the
    reference's tensor names under transformers 4) as a :class:`DPLM2BitLM` in eval mode.

    A ``vocab.txt`` is optional (the reference reads the DPLM-2 vocabulary from elsewhere);
    when present it must be the DPLM-2 vocabulary in its released order. Token dropout: 2
    passes when the config has ``token_dropout`` on, else 0 (``token_dropout_passes``
    overrides).
    """
    from dplm2.io import read_tensor_file
    from dplm2.lm import official as off
    from dplm2.lm.vocab import official_id_map

    files = resolve_bit(name_or_path, cache_dir)
    raw = json.loads(Path(files["config"]).read_text())
    if "bit" not in str(raw.get("dplm_type", "")):
        raise ValueError(f"{files['config']}: dplm_type {raw.get('dplm_type')!r} is no bit model")
    if raw.get("vocab_size") != N_AA:
        raise ValueError(f"{files['config']}: vocab_size {raw.get('vocab_size')}, a bit model "
                         f"has {N_AA}")
    if int(raw.get("codebook_embed_dim", N_BITS)) != N_BITS:
        raise ValueError(f"{files['config']}: codebook_embed_dim {raw['codebook_embed_dim']}, "
                         f"this vocabulary has {N_BITS} bits")
    if raw.get("position_embedding_type", "rotary") != "rotary":
        raise ValueError(f"{files['config']}: only rotary networks are DPLM-2 checkpoints")
    if files.get("vocab") is not None:
        m = official_id_map(files["vocab"])
        if not np.array_equal(m, np.arange(len(m))):
            raise ValueError(f"{files['vocab']}: a bit model needs the released DPLM-2 order")
    keep = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "layer_norm_eps", "max_position_embeddings", "emb_layer_norm_before", "hidden_act",
            "initializer_range")
    missing = [k for k in keep[:4] if k not in raw]
    if missing:
        raise ValueError(f"{files['config']}: missing {missing}")
    from transformers import EsmConfig

    cfg = EsmConfig(**{k: raw[k] for k in keep if k in raw}, vocab_size=N_AA,
                    position_embedding_type="rotary", pad_token_id=PAD, mask_token_id=MASK,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    passes = token_dropout_passes
    if passes is None:
        passes = 2 if raw.get("token_dropout", False) else 0
    mark_bit(cfg, passes)
    cfg.dplm2_official = {"source_config": "config.json", "dplm_type": raw.get("dplm_type"),
                          "token_dropout": bool(raw.get("token_dropout", False))}
    where = str(files["weights"])
    state = {}
    for name, value in read_tensor_file(files["weights"]).items():
        key = off.strip_prefix(name)
        if "lora_" in key or ".base_layer." in key:
            raise ValueError(f"{where}: {name} is a LoRA tensor; merge the adapter first")
        state[key] = value
    off.check_layer_inv_freq(state, where)
    net = EsmForDPLM2Bit(cfg)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    wrong = [f"{k} {tuple(v.shape)} != {tuple(shapes[k])}" for k, v in state.items()
             if k in shapes and v.shape != shapes[k]]
    if wrong:
        raise ValueError(f"{where}: weights do not fit {files['config']} (shapes: {wrong[:5]})")
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(off.OPTIONAL_PREFIXES)
               and not k.endswith(off.OPTIONAL_SUFFIXES)]
    skip = off.ignored_unexpected(net.esm)
    unexpected = [k for k in unexpected
                  if not (k.startswith("esm.") and skip is not None and skip.search(k))]
    if missing or unexpected:
        raise ValueError(f"{where}: weights do not fit {files['config']} "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    net.set_attn_implementation(attn_implementation)
    log.info("loaded released DPLM-2 Bit %s: %d layers, hidden %d, token-dropout passes %d",
             name_or_path, cfg.num_hidden_layers, cfg.hidden_size, passes)
    return DPLM2BitLM(net).to(device).eval()


def resolve_bit(name_or_path: str | os.PathLike, cache_dir: str | None = None) -> dict:
    """``{"config", "vocab" (or None), "weights"}`` local paths of a released bit checkpoint."""
    from dplm2.lm import official as off

    files = model_files(name_or_path, [off.CONFIG_NAME], optional=[off.VOCAB_FILE], one_of=off.WEIGHT_NAMES,
                        what="a released DPLM-2 Bit folder", cache_dir=cache_dir)
    return {"config": files[off.CONFIG_NAME], "vocab": files[off.VOCAB_FILE], "weights": files["one_of"]}


def official_bit_config(model: DPLM2BitLM, name_or_path: str = "") -> dict:
    """config.json of ``model`` as transformers 4.39 writes it for the reference's
    ``EsmForDPLM2Bit``: the DPLM-2 keys with ``architectures: [EsmForDPLM2Bit]``,
    ``dplm_type: dplm2_bit_esm`` and ``vocab_size: 33``."""
    from dplm2.lm import official as off

    raw = off.official_config(model, name_or_path)
    raw.update(architectures=[BIT_ARCHITECTURE], dplm_type=BIT_DPLM_TYPE, vocab_size=N_AA)
    return dict(sorted(raw.items()))


def export_official_bit(model: DPLM2BitLM, folder: str | os.PathLike, prefix: str = "",
                        name_or_path: str = "") -> Path:
    """Write ``model`` in the released bit layout (config.json, vocab.txt, model.safetensors),
    atomically; the inverse of :func:`load_official_bit`."""
    from safetensors.torch import save_file

    from dplm2.io import atomic_path, atomic_write_text
    from dplm2.lm import official as off

    raw = official_bit_config(model, name_or_path)
    state = off.official_state(model, prefix)
    folder = Path(folder)
    with atomic_path(folder, is_dir=True) as tmp:
        tmp = Path(tmp)
        atomic_write_text(tmp / off.CONFIG_NAME, json.dumps(raw, indent=2, sort_keys=True) + "\n")
        atomic_write_text(tmp / off.VOCAB_FILE, "\n".join(off.official_vocab_names()))
        save_file(state, str(tmp / off.WEIGHT_NAMES[0]), metadata={"format": "pt"})
    return folder


def struct_ce(logits: torch.Tensor, bits: torch.Tensor, ignore_one: bool = False) -> torch.Tensor:
    """Per-position bit loss: (M, 13, 2) logits, (M, 13) 0/1 targets -> (M,) cross-entropy
    summed over the 13 bits. ``ignore_one``: the reference's ``ignore_index = 1`` (the pad
    id) applied to bit targets, dropping every bit whose target is 1 (reproduction only)."""
    ce = F.cross_entropy(logits.float().reshape(-1, 2), bits.reshape(-1),
                         reduction="none").reshape(bits.shape)
    if ignore_one:
        ce = ce.masked_fill(bits == 1, 0.0)
    return ce.sum(-1)
