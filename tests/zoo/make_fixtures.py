#!/usr/bin/env python3
"""Regenerate the HuggingFace parity fixtures under tests/zoo/fixtures/.

    pip install torch transformers safetensors
    python3 tests/zoo/make_fixtures.py [NAME ...]

For every model class of the zoo this builds a tiny random config (hidden
32, 2 layers, vocabulary 100, seeded), perturbs every parameter so that no
LayerNorm weight is one and no bias is zero, and writes, in
tests/zoo/fixtures/<NAME>/:

  model.safetensors    what save_pretrained writes (tied weights absent)
  config.json          the HF config, as save_pretrained writes it
  inputs.safetensors   input_ids, attention_mask (and token_type_ids where
                       the model takes them), i64[2, 7]; row 1 is padded at
                       its end (attention_mask 0, input_ids = pad token)
  outputs.safetensors  HF's output in f32: `logits` for head models,
                       `last_hidden_state` for base models
  repr.txt             print(model) as this PyTorch prints it

(also two layouts other than the default: OPTForCausalLM-post-ln, as
opt-350m, and AlbertForMaskedLM-groups, two groups of two shared layers),
and the checkpoint-loading edge cases of BertForMaskedLM (same weights,
same inputs, outputs computed by HF after loading the file back):

  BertForMaskedLM-legacy-names    LayerNorm.gamma / LayerNorm.beta names
  BertForMaskedLM-extra-tensors   bert.pooler.* and cls.seq_relationship.*
                                  present, as in bert-base-uncased
  BertForMaskedLM-f16             every tensor converted to F16
  BertForMaskedLM-bf16            every tensor converted to BF16

(The tied decoder weight and bias are absent from every head model's file,
as save_pretrained leaves them out.) HF runs with the eager attention
implementation in f32 on the CPU, in eval mode (dropout off).
"""

import json
import os
import shutil
import sys
import tempfile

import torch
import transformers as T
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
B, S = 2, 7
NPAD = 2  # padded positions at the end of row 1

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=64)


def bert_config(**kw):
    return T.BertConfig(**TINY, **kw)


def roberta_config():
    return T.RobertaConfig(**TINY)


def gpt2_config():
    return T.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                        bos_token_id=0, eos_token_id=0)


def opt_config(**kw):
    return T.OPTConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, ffn_dim=37, max_position_embeddings=64,
                       bos_token_id=2, eos_token_id=2, pad_token_id=1, **kw)


def albert_config(**kw):
    args = dict(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)
    args.update(kw)
    return T.AlbertConfig(**args)


# name -> (class, config maker, takes token_type_ids, output name, seed)
MODELS = {
    "BertModel": (T.BertModel, bert_config, True, "last_hidden_state", 1),
    "BertForMaskedLM": (T.BertForMaskedLM, bert_config, True, "logits", 2),
    "BertLMHeadModel": (T.BertLMHeadModel, lambda: bert_config(is_decoder=True), True,
                        "logits", 3),
    "RobertaModel": (T.RobertaModel, roberta_config, True, "last_hidden_state", 4),
    "RobertaForMaskedLM": (T.RobertaForMaskedLM, roberta_config, True, "logits", 5),
    "GPT2Model": (T.GPT2Model, gpt2_config, False, "last_hidden_state", 6),
    "GPT2LMHeadModel": (T.GPT2LMHeadModel, gpt2_config, False, "logits", 7),
    "OPTModel": (T.OPTModel, opt_config, False, "last_hidden_state", 8),
    "OPTForCausalLM": (T.OPTForCausalLM, opt_config, False, "logits", 9),
    "AlbertModel": (T.AlbertModel, albert_config, True, "last_hidden_state", 10),
    "AlbertForMaskedLM": (T.AlbertForMaskedLM, albert_config, True, "logits", 11),
    # opt-350m's layout: LayerNorm after each block, no final LayerNorm,
    # embeddings narrower than the model (project_in / project_out)
    "OPTForCausalLM-post-ln": (T.OPTForCausalLM,
                               lambda: opt_config(do_layer_norm_before=False,
                                                  word_embed_proj_dim=16),
                               False, "logits", 12),
    # two layer groups of two layers each, shared over four layers
    "AlbertForMaskedLM-groups": (T.AlbertForMaskedLM,
                                 lambda: albert_config(num_hidden_layers=4,
                                                       num_hidden_groups=2,
                                                       inner_group_num=2),
                                 True, "logits", 13),
}
LEFT_PADDED = ("roberta", "opt", "gpt2")
EDGE_CASES = ["legacy-names", "extra-tensors", "f16", "bf16"]


def perturb(model, seed):
    """Random weights of a useful size, ties kept (shared parameters)."""
    g = torch.Generator().manual_seed(1000 + seed)
    ln_weights = {id(m.weight) for m in model.modules()
                  if isinstance(m, torch.nn.LayerNorm) and m.weight is not None}
    with torch.no_grad():
        for p in model.parameters():  # each shared parameter once
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            p.copy_(1.0 + 0.1 * noise if id(p) in ln_weights else 0.2 * noise)


def make_inputs(config, token_types, seed):
    g = torch.Generator().manual_seed(2000 + seed)
    ids = torch.randint(3, config.vocab_size, (B, S), generator=g, dtype=torch.long)
    mask = torch.ones(B, S, dtype=torch.long)
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    # padding at the start of the row where the positions count only the
    # real tokens (RoBERTa, OPT: the cumsum matters), else at the end
    padded = slice(0, NPAD) if config.model_type in LEFT_PADDED else slice(S - NPAD, S)
    mask[1, padded] = 0
    ids[1, padded] = pad
    inputs = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        inputs["token_type_ids"] = torch.randint(0, config.type_vocab_size, (B, S),
                                                 generator=g, dtype=torch.long)
    return inputs


def build(cls, config):
    config._attn_implementation = "eager"
    model = cls(config)
    return model.eval()


def run(model, inputs, out_name):
    with torch.no_grad():
        out = model(**inputs)
    return {out_name: getattr(out, out_name).detach().float().contiguous()}


def from_dir(cls, d):
    return cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()


def save_case(name, src_dir, inputs, outputs, repr_text=None):
    d = os.path.join(FIXTURES, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for f in ("model.safetensors", "config.json"):
        shutil.copy(os.path.join(src_dir, f), os.path.join(d, f))
    save_file({k: v.contiguous() for k, v in inputs.items()},
              os.path.join(d, "inputs.safetensors"))
    save_file(outputs, os.path.join(d, "outputs.safetensors"))
    if repr_text is not None:
        with open(os.path.join(d, "repr.txt"), "w") as f:
            f.write(repr_text + "\n")
    for f in os.listdir(d):
        size = os.path.getsize(os.path.join(d, f))
        assert size < 512 * 1024, "%s/%s is %d bytes" % (name, f, size)
    print("wrote", os.path.relpath(d, os.getcwd()))


def make_model(name, tmp):
    cls, make_config, token_types, out_name, seed = MODELS[name]
    torch.manual_seed(seed)
    model = build(cls, make_config())
    perturb(model, seed)
    inputs = make_inputs(model.config, token_types, seed)
    src = os.path.join(tmp, name)
    model.save_pretrained(src)
    # the outputs of the model as HF loads it back from the file
    outputs = run(from_dir(cls, src), inputs, out_name)
    ref = run(model, inputs, out_name)
    assert torch.equal(outputs[out_name], ref[out_name]), name + ": reload changed outputs"
    save_case(name, src, inputs, outputs, repr(model))
    return src, inputs


def rewrite(src, dst, fn):
    os.makedirs(dst)
    shutil.copy(os.path.join(src, "config.json"), dst)
    tensors = load_file(os.path.join(src, "model.safetensors"))
    save_file(fn(tensors), os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})


def make_edge_case(case, src, inputs, tmp):
    name = "BertForMaskedLM-" + case
    dst = os.path.join(tmp, name)
    g = torch.Generator().manual_seed(3000)
    if case == "legacy-names":
        def fn(t):
            out = {}
            for k, v in t.items():
                if k.endswith("LayerNorm.weight"):
                    k = k[:-len("weight")] + "gamma"
                elif k.endswith("LayerNorm.bias"):
                    k = k[:-len("bias")] + "beta"
                out[k] = v
            return out
    elif case == "extra-tensors":
        def fn(t):
            out = dict(t)
            out["bert.pooler.dense.weight"] = torch.randn(32, 32, generator=g)
            out["bert.pooler.dense.bias"] = torch.randn(32, generator=g)
            out["cls.seq_relationship.weight"] = torch.randn(2, 32, generator=g)
            out["cls.seq_relationship.bias"] = torch.randn(2, generator=g)
            return out
    else:
        dt = torch.float16 if case == "f16" else torch.bfloat16

        def fn(t):
            return {k: v.to(dt) for k, v in t.items()}
    rewrite(src, dst, fn)
    if case == "legacy-names":
        names = load_file(os.path.join(dst, "model.safetensors")).keys()
        assert any(k.endswith(".gamma") for k in names)
    outputs = run(from_dir(T.BertForMaskedLM, dst), inputs, "logits")
    if case in ("legacy-names", "extra-tensors"):  # HF loads the same model
        same = run(from_dir(T.BertForMaskedLM, src), inputs, "logits")
        assert torch.equal(outputs["logits"], same["logits"]), name
    save_case(name, dst, inputs, outputs)


def main(argv):
    names = argv or list(MODELS) + ["BertForMaskedLM-" + c for c in EDGE_CASES]
    torch.set_grad_enabled(False)
    tmp = tempfile.mkdtemp(prefix="slapo-fixtures-")
    try:
        made = {}
        for name in names:
            if name in MODELS:
                made[name] = make_model(name, tmp)
                continue
            base, _, case = name.partition("-")
            if base != "BertForMaskedLM" or case not in EDGE_CASES:
                sys.exit("unknown fixture %s (known: %s, BertForMaskedLM-{%s})"
                         % (name, ", ".join(MODELS), ",".join(EDGE_CASES)))
            if base not in made:
                made[base] = make_model(base, tmp)
            make_edge_case(case, *made[base], tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("transformers %s, torch %s" % (T.__version__, torch.__version__))


if __name__ == "__main__":
    main(sys.argv[1:])
