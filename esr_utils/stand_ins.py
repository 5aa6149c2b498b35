"""Tiny random-weight stand-ins for the paper's models and SAEs, for the `paper-dryrun` profile.

With `ESR_STAND_INS=1` in the environment, `load_model`, `load_sae` and `get_spec` give, for each
paper model, a stand-in with the real model's class (`Gemma2ForCausalLM` with soft-capping and
sliding-window layers, or `LlamaForCausalLM` with Llama-3 RoPE scaling), its number of layers,
its steering and SAE layers, its SAE's width and on-disk format (a Gemma Scope `params.npz`, a
Goodfire `.pt`/`.pth`), and a tokenizer whose chat template behaves like the real one (Gemma has
no system role; Llama 3 writes a dated system block). Only the residual width is small
(`D_MODEL`) and the weights are random, so every line a paper run executes runs on a laptop
in seconds; the numbers it produces mean nothing.

Stand-ins are built on first use into `<cache>/stand_ins/<model>/`, deterministically (seeded),
from the embedded model's tokenizer: nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

__all__ = ["ENV_VAR", "D_MODEL", "active", "stand_in_dir", "model_dir", "sae_file",
           "GEMMA_TEMPLATE", "LLAMA3_TEMPLATE"]

ENV_VAR = "ESR_STAND_INS"
D_MODEL = 64  # residual width of every stand-in (the real ones are 2,304 to 8,192)
_FORMAT = 11  # bump when what is written changes, so old stand-ins are rebuilt

# Our own Jinja templates, written to produce each family's documented chat format.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{{ bos_token }}<|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] | trim }}"
    "{% set messages = messages[1:] %}{% endif %}<|eot_id|>"
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
# family -> (bos, end-of-turn tokens that stop generation, pad, template)
_FAMILIES = {
    "gemma": ("<bos>", ["<eos>", "<end_of_turn>"], "<pad>", GEMMA_TEMPLATE,
              ["<start_of_turn>"]),
    "llama": ("<|begin_of_text|>", ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"], None,
              LLAMA3_TEMPLATE, ["<|start_header_id|>", "<|end_header_id|>"]),
}


def active() -> bool:
    """True when the environment asks for stand-ins (`ESR_STAND_INS=1`, set by the dry run)."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value not in {"", "0", "1", "true", "false"}:
        raise ValueError(f"{ENV_VAR} must be 1 or 0, got {value!r}")
    return value in {"1", "true"}


def stand_in_dir(name: str) -> Path:
    from esr_utils.paths import cache_dir

    return cache_dir() / "stand_ins" / name


def _family(spec) -> str:
    return "gemma" if spec.sae.source == "gemma_scope" else "llama"


def _fresh(folder: Path, spec) -> bool:
    done = folder / "done.json"
    return done.exists() and json.loads(done.read_text()) == _card(spec)


def _card(spec) -> dict:
    return {"format": _FORMAT, "model": spec.name, "layers": spec.n_layers, "d_model": D_MODEL,
            "sae": [spec.sae.source, spec.sae.layer, spec.sae.d_sae], "random_weights": True}


def model_dir(spec) -> Path:
    """The stand-in's transformers folder (config, weights, tokenizer), built on first use."""
    from esr_utils.paths import build_once

    folder = stand_in_dir(spec.name)
    build_once(f"stand_in-{spec.name}", lambda: _fresh(folder, spec), lambda: _build(folder, spec))
    return folder / "model"


def sae_file(spec) -> Path:
    """The stand-in SAE in its real on-disk format (Gemma Scope npz or Goodfire state dict)."""
    model_dir(spec)
    folder = stand_in_dir(spec.name) / "sae"
    return folder / ("params.npz" if _family(spec) == "gemma" else _goodfire_name(spec))


def _goodfire_name(spec) -> str:
    # the file names sae-lens's Goodfire loader accepts for the two releases
    return {"goodfire-llama-3.3-70b-instruct": "Llama-3.3-70B-Instruct-SAE-l50.pt",
            "goodfire-llama-3.1-8b-instruct": "Llama-3.1-8B-Instruct-SAE-l19.pth"}[spec.sae.release]


def _tokenizer(family: str):
    from transformers import AutoTokenizer

    from esr_utils.embedded_weights import embedded_dense_dir

    bos, stops, pad, template, extra = _FAMILIES[family]
    tok = AutoTokenizer.from_pretrained(embedded_dense_dir())
    specials = [bos, *stops, *extra] + ([pad] if pad else [])
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.bos_token, tok.eos_token = bos, stops[-1]
    # like the real tokenizers, BOS is prepended unless add_special_tokens=False
    from tokenizers import processors

    bos_id = tok.convert_tokens_to_ids(bos)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    tok.pad_token = pad  # Llama 3 ships without one: the package must cope
    tok.chat_template = template
    return tok, [tok.convert_tokens_to_ids(s) for s in stops]


def _config(spec, family: str, vocab: int, bos: int, stops: list[int], pad: int | None):
    common = dict(vocab_size=vocab, hidden_size=D_MODEL, intermediate_size=2 * D_MODEL,
                  num_hidden_layers=spec.n_layers, num_attention_heads=2, num_key_value_heads=1,
                  head_dim=D_MODEL // 2, bos_token_id=bos, eos_token_id=stops,
                  pad_token_id=pad)
    if family == "gemma":
        from transformers import Gemma2Config

        return Gemma2Config(**common, query_pre_attn_scalar=D_MODEL // 2, sliding_window=32,
                            attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                            hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True)
    from transformers import LlamaConfig

    return LlamaConfig(**common, max_position_embeddings=131_072, rms_norm_eps=1e-5,
                       tie_word_embeddings=False,
                       rope_parameters={"rope_type": "llama3", "rope_theta": 500_000.0,
                                        "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 8192})


def _build(folder: Path, spec) -> None:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    family = _family(spec)
    print(f"building the random-weight stand-in for {spec.name} in {folder} ...", flush=True)
    shutil.rmtree(folder, ignore_errors=True)  # nothing of an older stand-in survives
    tok, stops = _tokenizer(family)
    pad = tok.pad_token_id if _FAMILIES[family][2] else None
    config = _config(spec, family, len(tok), tok.bos_token_id, stops, pad)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    out = folder / "model"
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=stops,
                     pad_token_id=pad).save_pretrained(out)
    tok.save_pretrained(out)
    _write_sae(folder / "sae", spec, family, model, tok)
    (folder / "done.json").write_text(json.dumps(_card(spec)))


def _write_sae(folder: Path, spec, family: str, model, tok) -> None:
    """A sparse, heavy-tailed SAE on the stand-in's own residuals at the SAE's layer.

    Decoder rows are random unit vectors orthogonal to the attention sinks (the first two
    tokens, of outsized norm, where trained SAEs stay silent); the encoder is their transpose,
    centred on the residuals' mean; each latent's threshold is set so that it fires on a chosen
    share of tokens, log-uniform between 1e-4 and 1e-2 like a trained SAE's, and on 8% for the
    latents the paper names (chapter 4 needs them active). So latent selection finds latents
    silent on every prompt, and the paper's latents fire."""
    import numpy as np
    import torch

    from esr_utils.paper_latents import PAPER_OTDS
    from esr_utils.prompts import conversation_text, load_prompts

    folder.mkdir(parents=True, exist_ok=True)
    # each prompt "answered" by the next eight: English text as long as a short answer, since a
    # random model's residuals drift with position and chapter 4 reads answers
    prompts = load_prompts("eval")
    texts = [conversation_text(tok, p, " ".join((prompts * 2)[i + 1:i + 9]))
             for i, p in enumerate(prompts)]
    tok.pad_token = tok.pad_token or tok.eos_token  # for this batch only; not saved
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    gen = torch.Generator().manual_seed(spec.sae.layer)
    d_sae = spec.sae.d_sae
    with torch.no_grad():
        states = model(**batch, output_hidden_states=True).hidden_states[spec.sae.layer + 1]
        mask = batch["attention_mask"].bool()
        sinks = states[:, :2][mask[:, :2]]
        mask[:, :2] = False
        tokens = states[mask]
        mean = tokens.mean(0)
        basis = torch.linalg.svd(sinks - mean, full_matrices=False).Vh[:2]
        decoder = torch.randn(d_sae, D_MODEL, generator=gen)
        decoder -= (decoder @ basis.T) @ basis
        decoder /= decoder.norm(dim=1, keepdim=True)  # unit-norm rows, as both releases have
        encoder = decoder.T.contiguous()
        rate = 10 ** (-4 + 2 * torch.rand(d_sae, generator=gen))
        if spec.sae.release == "goodfire-llama-3.3-70b-instruct":
            rate[list(PAPER_OTDS)] = 0.08
        ranks = (rate * tokens.shape[0]).long().clamp(min=1)
        chunks = []
        for i in range(0, d_sae, 4096):
            pre = (tokens - mean) @ encoder[:, i:i + 4096]
            order = pre.topk(int(ranks[i:i + 4096].max()), dim=0).values
            chunks.append(order.gather(0, ranks[i:i + 4096][None] - 1)[0])
        threshold = torch.cat(chunks).clamp(min=1e-3)
        shift = -(mean @ encoder)  # centring, folded into the encoder bias
    b_dec = torch.zeros(D_MODEL)
    if family == "gemma":
        np.savez(folder / "params.npz", w_enc=encoder.numpy(), w_dec=decoder.numpy(),
                 b_enc=shift.numpy(), b_dec=b_dec.numpy(), threshold=threshold.numpy())
        return
    torch.save({"encoder_linear.weight": encoder.T.contiguous(),
                "decoder_linear.weight": decoder.T.contiguous(),
                "encoder_linear.bias": shift - threshold,
                "decoder_linear.bias": b_dec}, folder / _goodfire_name(spec))
