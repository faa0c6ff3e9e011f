"""The released DPLM-2 structure tokenizer (airkingbd/struct_tokenizer) in our classes.

The tests write tiny checkpoints in the released layout themselves: ``config.yaml`` (the
reference ``VQModel``'s arguments) and ``dplm2_struct_tokenizer.ckpt`` (a ``torch.save``'d flat
state dict), with the tensor names of the reference's modules written out here from its
source (fair-esm ``TransformerLayer`` / folding trunk, openfold structure module), not taken
from our classes or from transformers. Decoding is compared with a re-statement of the
reference's post-quantization network and heads in plain torch plus a transformers
``EsmFoldingTrunk`` loaded directly (strictly) from the official ``decoder.trunk.*`` tensors.
The GVP encoder's tensors come from a tiny fair-esm ``GVPTransformerEncoder`` (the reference
takes its encoder from fair-esm too); tokenizing is compared with that module run the way the
reference's ``GVPTransformerEncoderWrapper2`` runs it, then the pre-quantization head and LFQ
restated in plain torch.
"""

from __future__ import annotations

import argparse
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from dplm2.tokenizer import gvp, official
from dplm2.tokenizer.hub import load_tokenizer

try:
    gvp.import_fair_esm()
    HAVE_FAIR_ESM = True
except gvp.FairEsmUnavailable:
    HAVE_FAIR_ESM = False
needs_fair_esm = pytest.mark.skipif(not HAVE_FAIR_ESM, reason="fair-esm/torch_geometric absent")

E, BITS, D, Z = 16, 13, 32, 8  # encoder width, LFQ bits, post/trunk single width, pair width
POST_LAYERS, POST_HEADS = 2, 8
SEQ_HW, PAIR_HW, BINS = 8, 4, 4
IPA_C, IPA_H, QK, V, SM_BLOCKS = 4, 2, 2, 3, 2
#: tiny GVP-Transformer: 2 transformer layers (8 heads, as ESM-IF1), 2 GVP layers
GVP_LAYERS, GVP_GRAPH_LAYERS, GVP_FFN, GVP_NODE, GVP_EDGE = 2, 2, 2 * E, (8, 4), (8, 1)


def gvp_args() -> argparse.Namespace:
    return argparse.Namespace(
        encoder_embed_dim=E, encoder_layers=GVP_LAYERS, encoder_attention_heads=8,
        encoder_ffn_embed_dim=GVP_FFN, dropout=0.1, attention_dropout=0.1,
        gvp_top_k_neighbors=30, gvp_node_hidden_dim_scalar=GVP_NODE[0],
        gvp_node_hidden_dim_vector=GVP_NODE[1], gvp_edge_hidden_dim_scalar=GVP_EDGE[0],
        gvp_edge_hidden_dim_vector=GVP_EDGE[1], gvp_num_encoder_layers=GVP_GRAPH_LAYERS,
        gvp_dropout=0.1)


def fair_esm_encoder(seed: int = 0):
    """A tiny fair-esm GVPTransformerEncoder (eval mode), as the reference builds it."""
    encoder_cls, alphabet_cls = gvp.import_fair_esm()
    alphabet = alphabet_cls.from_architecture("invariant_gvp")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        embed = torch.nn.Embedding(len(alphabet), E, padding_idx=alphabet.padding_idx)
        with torch.no_grad():  # the constant <mask> embedding would drown the geometry at init
            embed.weight.mul_(0.01)
        return encoder_cls(gvp_args(), alphabet, embed).eval()


def official_shapes(*, e: int = E, bits: int = BITS, d: int = D, z: int = Z,
                    post_layers: int = POST_LAYERS, post_heads: int = POST_HEADS,
                    seq_hw: int = SEQ_HW, pair_hw: int = PAIR_HW, bins: int = BINS,
                    ipa_c: int = IPA_C, ipa_h: int = IPA_H, qk: int = QK, v: int = V,
                    trunk_blocks: int = 1) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of the reference's ``VQModel`` state dict but the GVP
    encoder's (tiny sizes by default; tests/tokenizer/test_paper_architecture.py asks for the
    released sizes)."""
    s: dict[str, tuple[int, ...]] = {}

    def lin(name, out, inp, bias=True):
        s[name + ".weight"] = (out, inp)
        if bias:
            s[name + ".bias"] = (out,)

    def ln(name, w):
        s[name + ".weight"] = (w,)
        s[name + ".bias"] = (w,)

    # never used by the reference: the decoder's ESM-2 and leftovers
    s["decoder.esm.embed_tokens.weight"] = (33, 8)
    lin("decoder.esm.layers.0.self_attn.k_proj", 8, 8)
    s["decoder.esm_s_combine"] = (7,)
    s["decoder.af2_to_esm"] = (22,)
    s["decoder.embedding.weight"] = (23, d)
    lin("decoder.ptm_head", 64, z)
    # pre-quantization head
    ln("pre_quant.0", e)
    lin("pre_quant.1", bits, e)
    lin("pre_quant.3", bits, bits)
    # post-quantization: MLP + fair-esm TransformerLayer x post_layers (rotary)
    ln("post_quant.mlp.0", bits)
    lin("post_quant.mlp.1", d, bits)
    lin("post_quant.mlp.3", d, d)
    for i in range(post_layers):
        p = f"post_quant.transformer.layers.{i}."
        for n in ("k_proj", "v_proj", "q_proj", "out_proj"):
            lin(p + "self_attn." + n, d, d)
        s[p + "self_attn.rot_emb.inv_freq"] = (d // post_heads // 2,)
        ln(p + "self_attn_layer_norm", d)
        lin(p + "fc1", 4 * d, d)
        lin(p + "fc2", d, 4 * d)
        ln(p + "final_layer_norm", d)
    ln("post_quant.transformer.emb_layer_norm_after", d)
    # decoder (ESMFold copy)
    ln("decoder.esm_s_mlp.0", d)
    lin("decoder.esm_s_mlp.1", d, d)
    lin("decoder.esm_s_mlp.3", d, d)
    t = "decoder.trunk."
    s[t + "pairwise_positional_embedding.embedding.weight"] = (2 * bins + 2, z)
    for blk in range(trunk_blocks):  # fair-esm TriangularSelfAttentionBlock, openfold modules
        b = t + f"blocks.{blk}."
        ln(b + "layernorm_1", d)
        ln(b + "sequence_to_pair.layernorm", d)
        lin(b + "sequence_to_pair.proj", z, d)
        lin(b + "sequence_to_pair.o_proj", z, z)
        ln(b + "pair_to_sequence.layernorm", z)
        lin(b + "pair_to_sequence.linear", d // seq_hw, z, bias=False)
        lin(b + "seq_attention.proj", 3 * d, d, bias=False)
        lin(b + "seq_attention.o_proj", d, d)
        lin(b + "seq_attention.g_proj", d, d)
        for m in ("tri_mul_out", "tri_mul_in"):
            for n in ("linear_a_p", "linear_a_g", "linear_b_p", "linear_b_g", "linear_g",
                      "linear_z"):
                lin(b + f"{m}.{n}", z, z)
            ln(b + f"{m}.layer_norm_in", z)
            ln(b + f"{m}.layer_norm_out", z)
        for m in ("tri_att_start", "tri_att_end"):
            ln(b + f"{m}.layer_norm", z)
            lin(b + f"{m}.linear", z // pair_hw, z, bias=False)
            for n in ("linear_q", "linear_k", "linear_v"):
                lin(b + f"{m}.mha.{n}", z, z, bias=False)
            lin(b + f"{m}.mha.linear_o", z, z)
            lin(b + f"{m}.mha.linear_g", z, z)
        for m, w in (("mlp_seq", d), ("mlp_pair", z)):
            ln(b + f"{m}.mlp.0", w)
            lin(b + f"{m}.mlp.1", 4 * w, w)
            lin(b + f"{m}.mlp.3", w, 4 * w)
    ln(t + "recycle_s_norm", d)
    ln(t + "recycle_z_norm", z)
    s[t + "recycle_disto.weight"] = (15, z)
    sm = t + "structure_module."  # openfold StructureModule
    ln(sm + "layer_norm_s", d)
    ln(sm + "layer_norm_z", z)
    lin(sm + "linear_in", d, d)
    s[sm + "ipa.head_weights"] = (ipa_h,)
    lin(sm + "ipa.linear_q", ipa_h * ipa_c, d)
    lin(sm + "ipa.linear_kv", 2 * ipa_h * ipa_c, d)
    lin(sm + "ipa.linear_q_points", ipa_h * qk * 3, d)
    lin(sm + "ipa.linear_kv_points", ipa_h * (qk + v) * 3, d)
    lin(sm + "ipa.linear_b", ipa_h, z)
    lin(sm + "ipa.linear_out", d, ipa_h * (z + ipa_c + v * 4))
    ln(sm + "layer_norm_ipa", d)
    for n in ("linear_1", "linear_2", "linear_3"):
        lin(sm + f"transition.layers.0.{n}", d, d)
    ln(sm + "transition.layer_norm", d)
    lin(sm + "bb_update.linear", 6, d)
    lin(sm + "angle_resnet.linear_in", d, d)
    lin(sm + "angle_resnet.linear_initial", d, d)
    for i in range(2):
        lin(sm + f"angle_resnet.layers.{i}.linear_1", d, d)
        lin(sm + f"angle_resnet.layers.{i}.linear_2", d, d)
    lin(sm + "angle_resnet.linear_out", 14, d)
    lin(t + "trunk2sm_s", d, d)
    lin(t + "trunk2sm_z", z, z)
    lin("decoder.distogram_head", 64, z)
    lin("decoder.lm_head", 23, d)
    ln("decoder.lddt_head.0", d)
    lin("decoder.lddt_head.1", d, d)
    lin("decoder.lddt_head.2", d, d)
    lin("decoder.lddt_head.3", 37 * 50, d)
    return s


def official_config() -> dict:
    return {
        "encoder_config": {"freeze": True},
        "decoder_config": {
            "input_dim": D, "lddt_head_hid_dim": D,
            "trunk": {"num_blocks": 1, "sequence_state_dim": D, "pairwise_state_dim": Z,
                      "sequence_head_width": SEQ_HW, "pairwise_head_width": PAIR_HW,
                      "position_bins": BINS, "max_recycles": 1,
                      "structure_module": {"c_s": D, "c_z": Z, "c_ipa": IPA_C, "c_resnet": D,
                                           "no_heads_ipa": IPA_H, "no_qk_points": QK,
                                           "no_v_points": V, "no_blocks": SM_BLOCKS,
                                           "no_angles": 7}}},
        "codebook_config": {"num_codes": 2**BITS, "embed_dim": BITS, "freeze": False,
                            "entropy_loss_weight": 0.1, "commitment_loss_weight": 0.25},
    }


def write_official(folder: Path, *, subdir: str = "", seed: int = 0, extra=None, drop=(),
                   config: dict | None = None, encoder: bool = HAVE_FAIR_ESM
                   ) -> dict[str, torch.Tensor]:
    """A tiny random checkpoint in the released layout; returns its raw tensors. ``encoder``:
    with the GVP encoder's ``encoder.encoder.*`` tensors (a tiny fair-esm module's)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = OrderedDict()
    if encoder:
        for name, value in fair_esm_encoder(seed).state_dict().items():
            state[official.ENCODER_PREFIX + name] = value.clone()
    for name, shape in official_shapes().items():
        if name in drop:
            continue
        if name.endswith("inv_freq"):
            hd = 2 * shape[0]
            state[name] = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        elif name == "decoder.af2_to_esm":
            state[name] = torch.arange(shape[0])
        elif len(shape) == 1 and ("norm" in name or name.endswith((".0.weight",))) \
                and name.endswith(".weight"):
            state[name] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = shape[-1] if len(shape) > 1 else 1
            state[name] = torch.randn(shape, generator=g) * (0.5 / math.sqrt(fan_in))
    state.update(extra or {})
    base = folder / subdir if subdir else folder
    base.mkdir(parents=True, exist_ok=True)
    torch.save(state, base / official.WEIGHTS_NAME)
    (base / official.CONFIG_NAME).write_text(yaml.safe_dump(config or official_config()))
    return dict(state)


# -- independent re-statement of the reference's decoding -------------------------------------
def ref_bits(tokens: torch.Tensor) -> torch.Tensor:
    """LFQ ``get_codebook_entry``: bit i = (token >> (BITS-1-i)) & 1, as -1/+1."""
    shifts = torch.tensor([BITS - 1 - i for i in range(BITS)])
    return ((tokens[..., None] >> shifts) & 1).float() * 2 - 1


def ref_post_quant(raw: dict, bits: torch.Tensor) -> torch.Tensor:
    """post_quant.mlp -> fair-esm rotary TransformerLayers -> emb_layer_norm_after ->
    decoder.esm_s_mlp, for an unpadded batch."""

    def linear(x, p):
        return F.linear(x, raw[p + ".weight"], raw.get(p + ".bias"))

    def lnorm(x, p):
        return F.layer_norm(x, x.shape[-1:], raw[p + ".weight"], raw[p + ".bias"])

    x = linear(F.relu(linear(lnorm(bits, "post_quant.mlp.0"), "post_quant.mlp.1")),
               "post_quant.mlp.3")
    b, l, _ = x.shape
    hd = D // POST_HEADS
    pos = torch.arange(l).float()
    for i in range(POST_LAYERS):
        p = f"post_quant.transformer.layers.{i}."
        h = lnorm(x, p + "self_attn_layer_norm")
        q = linear(h, p + "self_attn.q_proj") * hd**-0.5
        k = linear(h, p + "self_attn.k_proj")
        v = linear(h, p + "self_attn.v_proj")
        q, k, v = (t.reshape(b, l, POST_HEADS, hd) for t in (q, k, v))
        ang = pos[:, None] * raw[p + "self_attn.rot_emb.inv_freq"][None]  # [L, hd/2]
        cos, sin = ang.cos()[None, :, None], ang.sin()[None, :, None]

        def rot(t, cos=cos, sin=sin):  # rotate (t1, t2) halves by the angle
            t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
            return torch.cat([t1 * cos - t2 * sin, t2 * cos + t1 * sin], -1)

        att = torch.einsum("blhd,bmhd->bhlm", rot(q), rot(k)).softmax(-1)
        o = torch.einsum("bhlm,bmhd->blhd", att, v).reshape(b, l, D)
        x = x + linear(o, p + "self_attn.out_proj")
        h = lnorm(x, p + "final_layer_norm")
        h = linear(h, p + "fc1")
        x = x + linear(0.5 * h * (1 + torch.erf(h / math.sqrt(2))), p + "fc2")
    x = lnorm(x, "post_quant.transformer.emb_layer_norm_after")
    return linear(F.relu(linear(lnorm(x, "decoder.esm_s_mlp.0"), "decoder.esm_s_mlp.1")),
                  "decoder.esm_s_mlp.3")


def ref_trunk(raw: dict):
    """transformers' EsmFoldingTrunk, loaded strictly from the official decoder.trunk.*"""
    from transformers.models.esm.configuration_esm import StructureModuleConfig, TrunkConfig
    from transformers.models.esm.modeling_esmfold import EsmFoldingTrunk

    smc = StructureModuleConfig(sequence_dim=D, pairwise_dim=Z, ipa_dim=IPA_C, resnet_dim=D,
                                num_heads_ipa=IPA_H, num_qk_points=QK, num_v_points=V,
                                num_blocks=SM_BLOCKS, dropout_rate=0.0)
    trunk = EsmFoldingTrunk(TrunkConfig(num_blocks=1, sequence_state_dim=D, pairwise_state_dim=Z,
                                        sequence_head_width=SEQ_HW, pairwise_head_width=PAIR_HW,
                                        position_bins=BINS, max_recycles=1, dropout=0.0,
                                        structure_module=smc))
    sd = {k[len("decoder.trunk."):]: v for k, v in raw.items() if k.startswith("decoder.trunk.")}
    trunk.load_state_dict(sd, strict=True)
    return trunk.eval()


# -- tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("subdir", ["", ".hydra"])
def test_folder_loads_every_tensor_exactly(tmp_path, subdir):
    raw = write_official(tmp_path / "stok", subdir=subdir)
    model, sha = load_tokenizer(tmp_path / "stok")  # dispatched by hub.load_tokenizer
    from dplm2.io import sha256_file

    base = tmp_path / "stok" / subdir if subdir else tmp_path / "stok"
    assert sha == sha256_file(base / official.WEIGHTS_NAME)
    cfg = model.cfg
    assert cfg.decoder == "reference"
    assert (cfg.encoder_dim, cfg.codebook_bits, cfg.post_dim, cfg.post_layers, cfg.post_heads,
            cfg.trunk_blocks, cfg.pair_dim, cfg.seq_head_width, cfg.pair_head_width,
            cfg.position_bins, cfg.sm_blocks, cfg.ipa_dim, cfg.ipa_heads, cfg.qk_points,
            cfg.v_points, cfg.recycles, cfg.bit_standardize) == (
        E, BITS, D, POST_LAYERS, POST_HEADS, 1, Z, SEQ_HW, PAIR_HW, BINS, SM_BLOCKS, IPA_C,
        IPA_H, QK, V, 0, False)
    assert cfg.encoder == "esm_if1"
    if HAVE_FAIR_ESM:
        assert (cfg.encoder_layers, cfg.encoder_message_layers, cfg.gvp_ffn_dim,
                cfg.gvp_node_scalar, cfg.gvp_node_vector, cfg.gvp_edge_scalar,
                cfg.gvp_edge_vector, cfg.encoder_heads, cfg.encoder_neighbors) == (
            GVP_LAYERS, GVP_GRAPH_LAYERS, GVP_FFN, *GVP_NODE, *GVP_EDGE, 8, 30)
    ours = model.state_dict()
    mapped = 0
    for name, value in raw.items():
        dst = official.our_name(name)
        if dst is None:
            assert name.startswith(("decoder.esm", "decoder.embedding",
                                    "decoder.ptm_head", "decoder.af2_to_esm"))
            continue
        if dst in official.CONSTANT_NAMES:
            continue
        assert torch.equal(ours[dst], value), name
        mapped += 1
    constants = [k for k in ours if k in official.CONSTANT_NAMES]
    assert mapped == len(ours) - len(constants)  # all but constant buffers
    assert any(k.startswith("encoder.encoder.gvp_encoder.") for k in ours) == HAVE_FAIR_ESM
    # a few by hand
    assert torch.equal(ours["quantizer.proj.weight"], raw["pre_quant.1.weight"])
    assert torch.equal(ours["decoder.post.norm.bias"],
                       raw["post_quant.transformer.emb_layer_norm_after.bias"])
    assert torch.equal(ours["decoder.post.transformer.1.self_attn.q_proj.weight"],
                       raw["post_quant.transformer.layers.1.self_attn.q_proj.weight"])
    assert torch.equal(ours["decoder.aa_head.weight"], raw["decoder.lm_head.weight"])
    assert torch.equal(ours["decoder.trunk.structure_module.ipa.linear_kv_points.weight"],
                       raw["decoder.trunk.structure_module.ipa.linear_kv_points.weight"])
    assert not model.training


def test_decoding_equals_reference_recomputation(tmp_path):
    raw = write_official(tmp_path / "stok")
    model, _ = official.load_official_tokenizer(tmp_path / "stok")
    tokens = torch.tensor([[0, 8191, 5, 4096, 1234, 77, 3000, 8000, 2, 511, 6000, 42]])
    mask = torch.ones_like(tokens, dtype=torch.bool)
    bits = ref_bits(tokens)
    torch.testing.assert_close(model.quantizer.indices_to_codes(tokens), bits)
    with torch.no_grad():
        ours_s = model.decoder.trunk_input(model.decoder.post(bits, mask))
        ref_s = ref_post_quant(raw, bits)
        torch.testing.assert_close(ours_s, ref_s, atol=1e-5, rtol=1e-5)
        trunk = ref_trunk(raw)
        b, l = tokens.shape
        st = trunk(ref_s, ref_s.new_zeros(b, l, l, Z), torch.zeros_like(tokens),
                   torch.arange(l)[None], mask.float(), no_recycles=0)  # one pass
        lm = F.linear(st["s_s"], raw["decoder.lm_head.weight"], raw["decoder.lm_head.bias"])
        h = F.layer_norm(st["states"][-1], (D,), raw["decoder.lddt_head.0.weight"],
                         raw["decoder.lddt_head.0.bias"])
        for i in (1, 2, 3):
            h = F.linear(h, raw[f"decoder.lddt_head.{i}.weight"],
                         raw[f"decoder.lddt_head.{i}.bias"])
        lddt = h.reshape(b, l, 37, 50).softmax(-1) @ ((torch.arange(50) + 0.5) / 50)
        dec = model.detokenize(tokens)
        out = model.decoder(bits, mask)
    torch.testing.assert_close(dec["backbone"], st["positions"][-1][:, :, :4], atol=1e-4,
                               rtol=1e-4)
    assert torch.equal(dec["aatype"], lm[..., :20].argmax(-1))
    torch.testing.assert_close(dec["plddt"], 100 * lddt[..., 1], atol=1e-4, rtol=1e-4)
    dist = F.linear(st["s_z"], raw["decoder.distogram_head.weight"],
                    raw["decoder.distogram_head.bias"])
    torch.testing.assert_close(out["distogram_logits"], (dist + dist.transpose(1, 2)) / 2,
                               atol=1e-4, rtol=1e-4)
    assert torch.isfinite(dec["backbone"]).all()


def test_pre_quantization_and_lfq_match_and_tokenize_explains(tmp_path):
    raw = write_official(tmp_path / "stok", encoder=False)
    model, _ = official.load_official_tokenizer(tmp_path / "stok")
    h = torch.randn(2, 9, E, generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 9, dtype=torch.bool)
    x = F.layer_norm(h, (E,), raw["pre_quant.0.weight"], raw["pre_quant.0.bias"])
    x = F.relu(F.linear(x, raw["pre_quant.1.weight"], raw["pre_quant.1.bias"]))
    x = F.linear(x, raw["pre_quant.3.weight"], raw["pre_quant.3.bias"])
    expect = ((x > 0).long() * (2 ** torch.arange(BITS - 1, -1, -1))).sum(-1)
    with torch.no_grad():
        assert torch.equal(model.quantizer(h, mask).indices, expect)
    coords = torch.zeros(1, 5, 4, 3)
    with pytest.raises(NotImplementedError, match=rf"{official.WEIGHTS_NAME} holds no encoder"):
        model.tokenize(coords, torch.ones(1, 5, 4, dtype=torch.bool),
                       torch.ones(1, 5, dtype=torch.bool))


def test_without_fair_esm_it_decodes_and_tokenize_says_what_to_install(tmp_path, monkeypatch):
    write_official(tmp_path / "stok")  # with the encoder's tensors when fair-esm can write them

    def absent():
        raise gvp.FairEsmUnavailable("needs fair-esm: " + gvp.INSTALL_HINT)

    monkeypatch.setattr(gvp, "import_fair_esm", absent)
    model, _ = official.load_official_tokenizer(tmp_path / "stok")
    assert torch.isfinite(model.detokenize(torch.tensor([[1, 2, 3]]))["backbone"]).all()
    with pytest.raises(NotImplementedError, match="pip install 'fair-esm"):
        model.tokenize(torch.zeros(1, 5, 4, 3), torch.ones(1, 5, 4, dtype=torch.bool),
                       torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="without its encoder.*fair-esm"):
        official.import_official_tokenizer(tmp_path / "stok", tmp_path / "ours")
    assert not (tmp_path / "ours" / "model.safetensors").exists()


# -- tokenizing: fair-esm's encoder run as the reference runs it ------------------------------
def ref_tokenize(raw: dict, coords: torch.Tensor, res_mask: torch.Tensor,
                 seq_length: torch.Tensor) -> torch.Tensor:
    """The reference's ``VQModel.tokenize``: ``GVPTransformerEncoderWrapper2`` (N, CA, C; NaN
    outside ``res_mask``; padding past ``seq_length``; confidence = mask), the pre-quantization
    head, ``* mask`` and LFQ (bit = sign, dimension 0 most significant)."""
    enc = fair_esm_encoder()
    enc.load_state_dict({k[len(official.ENCODER_PREFIX):]: v for k, v in raw.items()
                         if k.startswith(official.ENCODER_PREFIX)}, strict=True)
    padding = ~(torch.arange(coords.shape[1])[None] < seq_length[:, None])
    mask = res_mask & ~padding
    xyz = coords[:, :, :3].masked_fill(~mask[..., None, None], float("nan"))
    with torch.no_grad():
        h = enc(xyz, padding, mask.float())["encoder_out"][0].transpose(0, 1)
    x = F.layer_norm(h, (E,), raw["pre_quant.0.weight"], raw["pre_quant.0.bias"])
    x = F.relu(F.linear(x, raw["pre_quant.1.weight"], raw["pre_quant.1.bias"]))
    x = F.linear(x, raw["pre_quant.3.weight"], raw["pre_quant.3.bias"]) * mask[..., None]
    return ((x > 0).long() * (2 ** torch.arange(BITS - 1, -1, -1))).sum(-1)


@needs_fair_esm
def test_tokenize_equals_the_reference_encoder_on_real_chains(tmp_path, records):
    from dplm2.tokenizer.data import collate

    from .conftest import with_missing_n

    raw = write_official(tmp_path / "stok")
    model, _ = load_tokenizer(tmp_path / "stok")
    assert isinstance(model.encoder, gvp.GVPTransformerEncoder)
    recs = [with_missing_n(records[0], 7), records[1]]  # one residue without a frame
    batch = collate(recs)  # padded to the longer chain
    lengths = torch.tensor([len(r.chain) for r in recs])
    with torch.no_grad():
        ours = model.tokenize(batch["coords"], batch["atom_mask"], batch["mask"])
    ref = ref_tokenize(raw, batch["coords"], batch["mask"], lengths)
    for i, n in enumerate(lengths.tolist()):
        m = batch["mask"][i, :n]
        assert torch.equal(ours[i, :n][m], ref[i, :n][m])
        assert (ours[i, :n][~m] == model.cfg.unknown_token).all()
    assert not batch["mask"][0, 7] and ours[0, 7] == model.cfg.unknown_token
    assert len(torch.unique(ref[batch["mask"]])) >= 5  # not a constant encoder


@needs_fair_esm
def test_released_tokens_are_rotation_invariant(tmp_path, records):
    from scipy.spatial.transform import Rotation

    from dplm2.tokenizer.data import collate

    write_official(tmp_path / "stok")
    model, _ = load_tokenizer(tmp_path / "stok")
    batch = collate(records[:1])
    rot = torch.tensor(Rotation.random(random_state=1).as_matrix(), dtype=torch.float32)
    moved = (batch["coords"] @ rot.T + torch.tensor([12.0, -30.0, 7.5])) * batch["atom_mask"][..., None]
    with torch.no_grad():
        a = model.tokenize(batch["coords"], batch["atom_mask"], batch["mask"])
        b = model.tokenize(moved, batch["atom_mask"], batch["mask"])
    assert (a == b).float().mean() >= 0.98


@needs_fair_esm
def test_import_official_writes_our_layout_that_tokenizes_the_same(tmp_path, chain_shard):
    import json

    from dplm2.cli import main
    from dplm2.tokenizer.tokenize import read_token_shard

    write_official(tmp_path / "stok")
    assert main(["tokenizer", "import-official", "--source", str(tmp_path / "stok"),
                 "--out", str(tmp_path / "ours")]) == 0
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == [
        "config.json", "model.safetensors", "model.safetensors.sha256", "released_from.json"]
    record = json.loads((tmp_path / "ours" / "released_from.json").read_text())
    from dplm2.io import sha256_file

    assert record["checkpoint_sha256"] == sha256_file(tmp_path / "stok" / official.WEIGHTS_NAME)
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["encoder"] == "esm_if1"
    shards = {}
    for name, tok in (("released", tmp_path / "stok"), ("imported", tmp_path / "ours")):
        out = tmp_path / f"{name}.parquet"
        assert main(["tokenizer", "tokenize", "--chains", str(chain_shard), "--tokenizer",
                     str(tok), "--out", str(out)]) == 0
        shards[name] = read_token_shard(out)
    a, b = shards["released"], shards["imported"]
    assert a["struct_tokens"].to_list() == b["struct_tokens"].to_list()
    assert any(8192 in t for t in a["struct_tokens"].to_list())  # the missing-N residue
    assert len({t for row in a["struct_tokens"].to_list() for t in row}) >= 5
def test_hub_id_fetches_only_the_named_files(tmp_path, fake_hub):
    src = tmp_path / "hub"
    raw = write_official(src)
    asked = fake_hub(src)
    model, _ = load_tokenizer("airkingbd/struct_tokenizer@abc123")
    assert asked == [("airkingbd/struct_tokenizer", "config.yaml", "abc123"),
                     ("airkingbd/struct_tokenizer", "dplm2_struct_tokenizer.ckpt", "abc123")]
    assert torch.equal(model.state_dict()["decoder.trunk_input.1.weight"],
                       raw["decoder.esm_s_mlp.1.weight"])
    # another repository in the released layout: our config.json is asked for first
    asked.clear()
    load_tokenizer("someone/my_struct_tokenizer")
    assert [a[1] for a in asked] == ["config.json", "config.yaml", "dplm2_struct_tokenizer.ckpt"]


def test_bad_or_missing_tensors_name_the_file(tmp_path):
    ckpt = official.WEIGHTS_NAME
    write_official(tmp_path / "a", extra={"decoder.bogus_head.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match=rf"{ckpt}.*unexpected: decoder.bogus_head.weight"):
        official.load_official_tokenizer(tmp_path / "a")
    write_official(tmp_path / "b", drop={"decoder.trunk.structure_module.bb_update.linear.bias",
                                         "post_quant.transformer.layers.1.fc2.weight"})
    with pytest.raises(ValueError, match=rf"{ckpt}.*2 missing.*bb_update.linear.bias"):
        official.load_official_tokenizer(tmp_path / "b")
    raw = write_official(tmp_path / "c")
    raw["decoder.lm_head.bias"] = torch.zeros(22)
    torch.save(raw, tmp_path / "c" / ckpt)
    with pytest.raises(ValueError, match=rf"{ckpt}.*lm_head"):
        official.load_official_tokenizer(tmp_path / "c")
    cfg = official_config()
    cfg["decoder_config"]["trunk"]["pairwise_state_dim"] = 16
    write_official(tmp_path / "d", config=cfg)
    with pytest.raises(ValueError, match=r"config.yaml.*pairwise_state_dim = 16"):
        official.load_official_tokenizer(tmp_path / "d")
    write_official(tmp_path / "e")
    (tmp_path / "e" / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        official.load_official_tokenizer(tmp_path / "e")
    (tmp_path / "f").mkdir()
    torch.save({"w": torch.zeros(1), "args": argparse.Namespace(x=1)}, tmp_path / "f" / ckpt)
    (tmp_path / "f" / "config.yaml").write_text(yaml.safe_dump(official_config()))
    with pytest.raises(ValueError, match=rf"{ckpt}: not a readable tensors-only checkpoint"):
        official.load_official_tokenizer(tmp_path / "f")
    with pytest.raises(FileNotFoundError, match="neither"):
        official.load_official_tokenizer(tmp_path / "nothing-here")


def test_cli_detokenize_writes_a_pdb_biotite_reads(tmp_path):
    import biotite.structure.io as strucio
    import pyarrow as pa

    from dplm2.cli import main
    from dplm2.io import write_parquet
    from dplm2.tokenizer.tokenize import TOKEN_SCHEMA

    write_official(tmp_path / "stok")
    toks = [[5, 8191, 0, 4096, 8192, 77, 3000, 12], [1, 2, 3, 4, 5, 6]]
    rows = {"id": ["gen_0", "gen_1"], "source": ["generated"] * 2, "split": ["test"] * 2,
            "sequence": ["A" * len(t) for t in toks], "struct_tokens": toks,
            "length": [len(t) for t in toks], "plddt": [None, None]}
    shard = tmp_path / "tokens.parquet"
    write_parquet(pa.Table.from_pydict(rows, schema=TOKEN_SCHEMA), shard, {"stage": "test"})
    assert main(["tokenizer", "detokenize", "--tokens", str(shard), "--tokenizer",
                 str(tmp_path / "stok"), "--out-dir", str(tmp_path / "pdb")]) == 0
    atoms = strucio.load_structure(tmp_path / "pdb" / "gen_0.pdb", extra_fields=["b_factor"])
    ca = atoms[atoms.atom_name == "CA"]
    assert len(ca) == 7  # the unknown token (8192) is a gap
    assert np.isfinite(ca.coord).all()
    assert ((ca.b_factor >= 0) & (ca.b_factor <= 100)).all()
    assert set(np.unique(atoms.atom_name)) <= {"N", "CA", "C", "O", "CB"}
    assert (tmp_path / "pdb" / "gen_1.pdb").is_file()


def test_reference_options_train_and_round_trip(tmp_path, records):
    """The new architecture options also work for our own training and checkpoints."""
    from dplm2.tokenizer.config import ModelConfig
    from dplm2.tokenizer.data import collate
    from dplm2.tokenizer.hub import save_tokenizer
    from dplm2.tokenizer.model import StructureTokenizer

    from .conftest import TINY_MODEL

    torch.manual_seed(0)
    cfg = ModelConfig.from_dict(dict(**{**TINY_MODEL, "decoder": "reference", "bit_standardize": False}))
    model = StructureTokenizer(cfg)
    batch = collate(records[:2], [(0, 24), (0, 20)])
    out = model(batch)
    loss, metrics = model.loss(batch, out)
    assert torch.isfinite(loss) and out["aa_logits"].shape[-1] == 20
    assert out["plddt_logits"].shape == (2, 24, 50)
    loss.backward()
    save_tokenizer(model, tmp_path / "ours")
    back, _ = load_tokenizer(tmp_path / "ours")
    assert back.cfg == cfg
    tokens = torch.tensor([[1, 2, 3, 8192, 5]])
    torch.testing.assert_close(back.detokenize(tokens)["backbone"],
                               model.eval().detokenize(tokens)["backbone"])
