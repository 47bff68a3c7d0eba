#!/usr/bin/env python3
"""Cross-check a LoRA adapter and a merged checkpoint written by the Rust trainer against PEFT.

Embeds texts with the E5-V text prompt (final-normed hidden state of the last token) three ways:

  (a) the base decoder as a transformers ``LlamaForCausalLM`` + ``PeftModel.from_pretrained(adapter)``
      (every LoRA key of the adapter must load, none may be missing: fails loudly otherwise);
  (b) ``--merged``: a full LLaVA-NeXT checkpoint (same layout as ``--base``) loaded with
      ``LlavaNextForConditionalGeneration.from_pretrained``, text through its language model;
  (c) (a) merged by PEFT (``merge_and_unload``).

Prints one JSON object (max abs diff and min cosine for each pair) and exits 1 if any min cosine is
below 0.99999 (``--min-cos``). Usage, from the repository root (PYTHON = an interpreter with torch,
transformers and peft; see fixtures/train/README.md for the pins)::

    PYTHON scripts/train/peft_check.py --base fixtures/tiny-e5v --adapter OUT/adapter --merged OUT/merged \\
        [--texts "a dog" "a cat"]

``--write-peft-merged DIR`` (instead of, or besides, ``--merged``) writes the PEFT-merged weights as a
copy of ``--base`` with only the 7 projection weights of each decoder layer replaced (same keys,
dtype, shards and files): a reference for what the Rust merge should produce, and how this script's
(b) path was tested before the Rust merge existed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

LLAMA3_WRAPPER = (
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n \n"
)
TEXT_PROMPT = "<sent>\nSummary above sentence in one word: "
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_TEXTS = [
    "hello world",
    "A dog runs along the beach, chasing a red ball.",
    "It 's a beautiful day in the park , is n't it ?",
    "Two children are building a sand castle with towers, walls and a deep moat while their parents "
    "read books under a striped umbrella and the dog barks at the waves.",
]
# decoder key prefixes of a LLaVA-NeXT checkpoint on disk -> LlamaForCausalLM
PREFIXES = [
    ("language_model.model.", "model."),  # 4.x layout (also what transformers 5.24 writes)
    ("model.language_model.", "model."),  # 5.x in-memory layout
]
LM_HEAD = ("language_model.lm_head.weight", "lm_head.weight")


def die(msg: str):
    print(f"peft_check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def checkpoint_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    return [folder / "model.safetensors"]


def decoder_key(key: str) -> str | None:
    for old, new in PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return "lm_head.weight" if key in LM_HEAD else None


def load_decoder(base: Path):
    from safetensors import safe_open
    from transformers import AutoConfig, LlamaForCausalLM

    model = LlamaForCausalLM(AutoConfig.from_pretrained(base).text_config).float()
    sd = {}
    for f in checkpoint_files(base):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                dk = decoder_key(k)
                if dk is not None:
                    sd[dk] = st.get_tensor(k).float()
    model.load_state_dict(sd, strict=True)
    return model.eval()


def encode(tok, texts):
    prompts = [LLAMA3_WRAPPER.format(TEXT_PROMPT.replace("<sent>", t)) for t in texts]
    ids = [tok(p).input_ids for p in prompts]
    width = max(len(i) for i in ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    return input_ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def embed(model, batch):
    input_ids, mask, pos = batch
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
    return out.hidden_states[-1][:, -1, :].float()  # final-normed, last token (left padding)


def load_peft(base: Path, adapter: Path):
    from peft import PeftModel
    from safetensors.torch import load_file

    model = PeftModel.from_pretrained(load_decoder(base), str(adapter)).eval()
    files = sorted(adapter.glob("adapter_model*.safetensors"))
    if not files:
        die(f"no adapter_model.safetensors in {adapter}")
    saved = {}
    for f in files:
        saved.update(load_file(str(f)))
    params = {k.replace(".default.", "."): v for k, v in model.named_parameters() if "lora_" in k}
    unexpected = sorted(set(saved) - set(params))
    missing = sorted(set(params) - set(saved))
    if unexpected or missing or not params:
        die(f"adapter keys do not match the model: unexpected {unexpected[:8]} ({len(unexpected)}), "
            f"missing {missing[:8]} ({len(missing)}), model LoRA tensors {len(params)}")
    for k, v in saved.items():
        if tuple(v.shape) != tuple(params[k].shape):
            die(f"{k}: adapter shape {tuple(v.shape)} != model {tuple(params[k].shape)}")
        if not torch.equal(v.float(), params[k].detach().float()):
            die(f"{k}: value in the model differs from the file")
    modules = {k.split(".")[-3] for k in saved}
    return model, {"lora_tensors": len(saved), "modules": sorted(modules)}


def write_peft_merged(base: Path, merged_model, out: Path):
    """Copy `base` to `out`, replacing only the 7 projection weights per layer by PEFT's merge."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    sd = merged_model.state_dict()
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out)
    replaced = 0
    for f in checkpoint_files(base):
        with safe_open(str(f), "pt") as st:
            meta = st.metadata()
            tensors = {k: st.get_tensor(k) for k in st.keys()}
        for k, v in tensors.items():
            dk = decoder_key(k)
            if dk is not None and dk.endswith(".weight") and dk.split(".")[-2] in TARGETS:
                tensors[k] = sd[dk].to(v.dtype).contiguous()
                replaced += 1
        save_file(tensors, str(out / f.name), metadata=meta)
    return replaced


def compare(x, y):
    cos = torch.nn.functional.cosine_similarity(x.double(), y.double(), dim=-1)
    return {"max_abs_diff": (x - y).abs().max().item(), "min_cos": cos.min().item()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="base LLaVA-NeXT checkpoint (e.g. fixtures/tiny-e5v)")
    ap.add_argument("--adapter", type=Path, required=True, help="PEFT adapter folder")
    ap.add_argument("--merged", type=Path, help="merged LLaVA-NeXT checkpoint folder (from the Rust trainer)")
    ap.add_argument("--texts", nargs="+", default=DEFAULT_TEXTS)
    ap.add_argument("--min-cos", type=float, default=0.99999)
    ap.add_argument("--write-peft-merged", type=Path, help="also write PEFT's merge as a copy of --base here")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.base)
    batch = encode(tok, args.texts)

    peft_model, info = load_peft(args.base, args.adapter)
    emb = {"peft": embed(peft_model, batch)}
    merged = peft_model.merge_and_unload().eval()
    emb["peft_merged"] = embed(merged, batch)
    report = {"texts": len(args.texts), "adapter": info}
    if args.write_peft_merged:
        report["wrote_peft_merged"] = {"dir": str(args.write_peft_merged),
                                       "replaced_tensors": write_peft_merged(args.base, merged, args.write_peft_merged)}
    if args.merged:
        from transformers import LlavaNextForConditionalGeneration

        llava, loading = LlavaNextForConditionalGeneration.from_pretrained(
            args.merged, dtype=torch.float32, output_loading_info=True
        )
        bad = {k: v for k, v in loading.items() if v}
        if bad:
            die(f"{args.merged} did not load cleanly: {bad}")
        emb["merged"] = embed(llava.eval(), batch)

    names = list(emb)
    report["pairs"] = {f"{a}~{b}": compare(emb[a], emb[b]) for i, a in enumerate(names) for b in names[i + 1 :]}
    report["min_cos"] = min(p["min_cos"] for p in report["pairs"].values())
    report["ok"] = report["min_cos"] >= args.min_cos
    print(json.dumps(report, indent=1))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
