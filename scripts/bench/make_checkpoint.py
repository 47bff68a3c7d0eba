#!/usr/bin/env python3
"""Write a random LLaVA-NeXT checkpoint with E5-V's exact structure, at a chosen scale, for
benchmarks and the load-memory test.

The files are what transformers 4.41.2 writes for royokong/e5-v: fp16 safetensors shards in the
4.x key layout (``language_model.model.*``, ``vision_tower.vision_model.*``,
``multi_modal_projector.*``, ``image_newline``, ``language_model.lm_head.weight``) with
``model.safetensors.index.json``, a 4.41-style ``config.json`` (fields equal to the class
defaults omitted), and the tokenizer and image processor files of ``fixtures/tiny-e5v-4x``
(byte-level BPE, vocab 1024, ``<image>`` = id 1024 outside the embedding table).

Weights follow ``fixtures/generate.py``'s scheme (linear N(0, 1/fan_in) with q/k x2, norm weights
1 + N(0, 0.2), biases N(0, 0.1), embeddings and ``image_newline`` N(0, 1)), seeded, so the
network's activations stay O(1) at any scale. Only numpy is needed (no torch, no safetensors)::

    python3 scripts/bench/make_checkpoint.py --scale small   # -> target/bench-models/small (~40 MB)
    python3 scripts/bench/make_checkpoint.py --scale mid     # -> target/bench-models/mid (~1.4 GB)
    python3 scripts/bench/make_checkpoint.py --scale narrow  # -> target/bench-models/narrow (~0.8 GB)
    python3 scripts/bench/make_checkpoint.py --scale full    # -> target/bench-models/full (~14.6 GB)

transformers >= 4.41 loads the result with ``LlavaNextForConditionalGeneration.from_pretrained``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
from pathlib import Path

try:
    import numpy as np
except ImportError:  # pragma: no cover
    sys.exit("make_checkpoint.py needs numpy (set PYTHON to an interpreter that has it)")

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "tiny-e5v-4x"
COPIED = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "generation_config.json",
]
VOCAB = 1024  # the fixture tokenizer's table; <image> = 1024 lies outside it, as in E5-V
SEED = 20240717

# text: hidden, layers, heads, kv heads, intermediate; vision: hidden, layers, heads, intermediate
SCALES = {
    # fast enough for criterion on 2 cores; the bench and vs_transformers default
    "small": dict(text=(512, 4, 8, 2, 1536), vision=(256, 4, 4, 1024), shard_mb=16),
    # ~0.70 B parameters, ~1.4 GB fp16 on disk (~2.7 GB loaded as f32): the memory test
    "mid": dict(text=(2048, 12, 16, 4, 5632), vision=(1024, 12, 16, 4096), shard_mb=500),
    # deep and narrow: a 135M Llama-architecture decoder (SmolLM's sizes, 30 layers) behind
    # E5-V's own CLIP ViT-L/14-336: per-op overhead and small matrices dominate (~0.8 GB)
    "narrow": dict(text=(576, 30, 9, 3, 1536), vision=(1024, 24, 16, 4096), shard_mb=500),
    # E5-V's real sizes (Llama-3-8B + CLIP ViT-L/14-336), ~14.6 GB fp16 on disk: the 128k
    # vocabulary is the fixture's 1024 here, everything else is the real shape
    "full": dict(text=(4096, 32, 32, 8, 14336), vision=(1024, 24, 16, 4096), shard_mb=5000),
}


def tensors(text, vision, rng):
    """(key, shape, init) in the order transformers 4.41.2 saves them; init is a callable."""
    hidden, layers, heads, kv_heads, inter = text
    v_hidden, v_layers, _, v_inter = vision
    head_dim = hidden // heads
    kv = kv_heads * head_dim
    patches = (336 // 14) ** 2 + 1

    def linear(scale=1.0):
        return lambda shape: normal(rng, shape, scale / np.sqrt(shape[-1] if len(shape) == 2 else np.prod(shape[1:])))

    def norm(shape):
        return normal(rng, shape, 0.2, 1.0)

    def bias(shape):
        return normal(rng, shape, 0.1)

    def unit(shape):
        return normal(rng, shape, 1.0)

    out = [("image_newline", (hidden,), unit)]
    lm = "language_model.model."
    out.append((f"{lm}embed_tokens.weight", (VOCAB, hidden), unit))
    for i in range(layers):
        p = f"{lm}layers.{i}."
        out += [
            (p + "self_attn.q_proj.weight", (hidden, hidden), linear(2.0)),
            (p + "self_attn.k_proj.weight", (kv, hidden), linear(2.0)),
            (p + "self_attn.v_proj.weight", (kv, hidden), linear()),
            (p + "self_attn.o_proj.weight", (hidden, hidden), linear()),
            (p + "mlp.gate_proj.weight", (inter, hidden), linear()),
            (p + "mlp.up_proj.weight", (inter, hidden), linear()),
            (p + "mlp.down_proj.weight", (hidden, inter), linear()),
            (p + "input_layernorm.weight", (hidden,), norm),
            (p + "post_attention_layernorm.weight", (hidden,), norm),
        ]
    out.append((f"{lm}norm.weight", (hidden,), norm))
    out.append(("language_model.lm_head.weight", (VOCAB, hidden), linear()))
    mm = "multi_modal_projector."
    out += [
        (mm + "linear_1.weight", (hidden, v_hidden), linear()),
        (mm + "linear_1.bias", (hidden,), bias),
        (mm + "linear_2.weight", (hidden, hidden), linear()),
        (mm + "linear_2.bias", (hidden,), bias),
    ]
    vt = "vision_tower.vision_model."
    out += [
        (vt + "embeddings.class_embedding", (v_hidden,), unit),
        (vt + "embeddings.patch_embedding.weight", (v_hidden, 3, 14, 14), linear()),
        (vt + "embeddings.position_embedding.weight", (patches, v_hidden), unit),
        (vt + "pre_layrnorm.weight", (v_hidden,), norm),
        (vt + "pre_layrnorm.bias", (v_hidden,), bias),
    ]
    for i in range(v_layers):
        p = f"{vt}encoder.layers.{i}."
        for proj, scale in (("q_proj", 2.0), ("k_proj", 2.0), ("v_proj", 1.0), ("out_proj", 1.0)):
            out += [
                (p + f"self_attn.{proj}.weight", (v_hidden, v_hidden), linear(scale)),
                (p + f"self_attn.{proj}.bias", (v_hidden,), bias),
            ]
        out += [
            (p + "layer_norm1.weight", (v_hidden,), norm),
            (p + "layer_norm1.bias", (v_hidden,), bias),
            (p + "mlp.fc1.weight", (v_inter, v_hidden), linear()),
            (p + "mlp.fc1.bias", (v_inter,), bias),
            (p + "mlp.fc2.weight", (v_hidden, v_inter), linear()),
            (p + "mlp.fc2.bias", (v_hidden,), bias),
            (p + "layer_norm2.weight", (v_hidden,), norm),
            (p + "layer_norm2.bias", (v_hidden,), bias),
        ]
    out += [
        (vt + "post_layernorm.weight", (v_hidden,), norm),
        (vt + "post_layernorm.bias", (v_hidden,), bias),
    ]
    return out


def normal(rng, shape, std, mean=0.0):
    x = rng.standard_normal(shape, dtype=np.float32)
    x *= np.float32(std)
    x += np.float32(mean)
    return x.astype(np.float16)


def write_safetensors(path: Path, items):
    """items: [(key, fp16 array)] -> one safetensors file (the format, written by hand)."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for key, array in items:
        header[key] = {"dtype": "F16", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, array in items:
            f.write(np.ascontiguousarray(array).tobytes())


def config_json(text, vision):
    hidden, layers, heads, kv_heads, inter = text
    v_hidden, v_layers, v_heads, v_inter = vision
    config = json.loads((FIXTURE / "config.json").read_text())
    config["text_config"].update(
        hidden_size=hidden,
        intermediate_size=inter,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        num_key_value_heads=kv_heads,
        vocab_size=VOCAB,
    )
    config["vision_config"].update(
        hidden_size=v_hidden,
        intermediate_size=v_inter,
        num_attention_heads=v_heads,
        num_hidden_layers=v_layers,
        projection_dim=hidden,
    )
    return config


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--out", type=Path, help="output folder (default target/bench-models/<scale>)")
    parser.add_argument("--shard-mb", type=int, help="largest shard in MB (default per scale)")
    parser.add_argument("--force", action="store_true", help="rewrite an existing checkpoint")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    out = args.out or ROOT / "target" / "bench-models" / args.scale
    if (out / "model.safetensors.index.json").is_file() and not args.force:
        print(f"{out} exists (use --force to rewrite)")
        return
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shard_bytes = (args.shard_mb or scale["shard_mb"]) * 1_000_000

    rng = np.random.default_rng(SEED)
    specs = tensors(scale["text"], scale["vision"], rng)
    # Group into shards first (sizes are known), then generate one shard at a time.
    shards, current, size = [], [], 0
    for key, shape, init in specs:
        nbytes = 2 * int(np.prod(shape))
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append((key, shape, init))
        size += nbytes
    shards.append(current)
    if len(shards) == 1 and len(current) > 1:  # always shard, as the real checkpoint is
        shards = [current[: len(current) // 2], current[len(current) // 2 :]]

    weight_map, total, params = {}, 0, 0
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        items = [(key, init(shape)) for key, shape, init in shard]
        write_safetensors(out / name, items)
        for key, array in items:
            weight_map[key] = name
            total += array.nbytes
            params += array.size
        print(f"  {name}: {len(items)} tensors, {sum(a.nbytes for _, a in items) / 1e6:.1f} MB")
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "config.json").write_text(json.dumps(config_json(scale["text"], scale["vision"]), indent=2) + "\n")
    for name in COPIED:
        shutil.copyfile(FIXTURE / name, out / name)
    print(f"{out}: {params / 1e6:.1f} M parameters, {total / 1e6:.1f} MB fp16 in {len(shards)} shards")


if __name__ == "__main__":
    main()
