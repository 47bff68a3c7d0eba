#!/usr/bin/env python3
"""PyTorch + PEFT side of the LoRA contrastive training-throughput benchmark (CPU).

Loads the decoder of a LLaVA-NeXT checkpoint (``fixtures/tiny-e5v`` or one written by
``scripts/bench/make_checkpoint.py``: 4.x or 5.x key layout, one file or shards + index, f32 or
fp16 on disk) as a transformers ``LlamaForCausalLM``, puts PEFT LoRA on
q/k/v/o/gate/up/down_proj and trains with E5-V's loss: every sentence is cut to ``--max-tokens``
tokens (tokenise, truncate, decode), put in the E5-V text prompt, embedded as the final-normed
hidden state of the last token; logits = [cos(z1, z2), cos(z1, z3)] / 0.05 over the whole global
batch ([B, 2B]), cross-entropy against the diagonal. AdamW, lr 4e-4.

The global batch ``--batch`` B is processed in micro-batches of ``--micro-batch`` M triplets (3M
sequences, left-padded, one forward each), keeping all B rows as negatives:

* B == M: one plain forward + backward;
* B > M: GradCache. Embed every micro-batch without grad, compute the loss on all cached
  embeddings (as leaves requiring grad) and backpropagate to them, then re-forward each micro-batch
  with grad (same RNG state, so LoRA dropout masks repeat) and
  ``torch.autograd.backward(reps, cached_grad)``.

The embedding skips the vocabulary projection (``lm_head`` is loaded but not run). Tokenisation
happens once before timing. One warm-up step, then ``--steps`` timed optimizer steps; prints ONE
JSON line to stdout::

    {"side": "torch+peft", "steps": K, "pairs": K*B, "seconds": S, "pairs_per_s": ..., "peak_rss_mb": ..., "threads": T}

Usage (PYTHON = an interpreter with torch, transformers, peft, safetensors)::

    PYTHON scripts/bench/train_torch.py --model target/bench-models/small --data train.csv \\
        --micro-batch 8 --batch 32 --steps 5 --threads 8 --rank 64 --alpha 16 --dropout 0.05 --max-tokens 32

The CSV has a header ``sent0,sent1,hard_neg``; rows are used in order, wrapping around.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import time
from pathlib import Path

import torch

LLAMA3_WRAPPER = (
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n \n"
)
TEXT_PROMPT = "<sent>\nSummary above sentence in one word: "
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TEMPERATURE = 0.05
LR = 4e-4
PREFIXES = [("language_model.model.", "model."), ("model.language_model.", "model.")]
LM_HEAD = ("language_model.lm_head.weight", "lm_head.weight")


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


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


def load_decoder(folder: Path, dtype: torch.dtype):
    from safetensors import safe_open
    from transformers import AutoConfig, LlamaForCausalLM

    cfg = AutoConfig.from_pretrained(folder).text_config
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    sd = {}
    for f in checkpoint_files(folder):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                dk = decoder_key(k)
                if dk is not None:
                    sd[dk] = st.get_tensor(k).to(dtype)
    model.load_state_dict(sd, strict=True, assign=True)
    # non-persistent buffers (rotary inv_freq) are still on meta: rebuild the rotary module on CPU
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    model.model.rotary_emb = LlamaRotaryEmbedding(config=cfg)
    for name, b in model.named_buffers():
        assert not b.is_meta, name
    return model


def read_triplets(path: Path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"sent0", "sent1", "hard_neg"} - set(reader.fieldnames or [])
        if missing:
            sys.exit(f"{path}: missing columns {sorted(missing)}")
        return [(r["sent0"], r["sent1"], r["hard_neg"]) for r in reader]


def prompt_ids(tok, sentence: str, max_tokens: int) -> list[int]:
    ids = tok(sentence, add_special_tokens=False, truncation=True, max_length=max_tokens).input_ids
    cut = tok.decode(ids)
    return tok(LLAMA3_WRAPPER.format(TEXT_PROMPT.replace("<sent>", cut))).input_ids


def collate(seqs, pad_id):
    width = max(len(s) for s in seqs)
    input_ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in seqs])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
    return input_ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def embed(decoder, batch):
    input_ids, mask, pos = batch
    h = decoder(input_ids=input_ids, attention_mask=mask, position_ids=pos).last_hidden_state  # final-normed
    return h[:, -1, :].float()


def e5v_loss(z1, z2, z3):
    cos = torch.nn.functional.cosine_similarity
    logits = torch.cat([cos(z1[:, None], z2[None], dim=-1), cos(z1[:, None], z3[None], dim=-1)], dim=1)
    return torch.nn.functional.cross_entropy(logits / TEMPERATURE, torch.arange(z1.shape[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--micro-batch", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    B, M = args.batch, args.micro_batch
    if M <= 0 or B % M:
        sys.exit(f"--batch {B} must be a positive multiple of --micro-batch {M}")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]

    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = read_triplets(args.data)
    need = (args.steps + 1) * B
    rows = [rows[i % len(rows)] for i in range(need)]
    cache: dict[str, list[int]] = {}
    for r in rows:
        for s in r:
            if s not in cache:
                cache[s] = prompt_ids(tok, s, args.max_tokens)
    ids = [[cache[s] for s in r] for r in rows]

    t_load = time.perf_counter()
    model = load_decoder(args.model, dtype)
    config = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.dropout,
                        target_modules=TARGETS, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    model.train()
    decoder = model.base_model.model.model  # LlamaModel with LoRA layers injected
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR)
    log(f"loaded {args.model} ({args.dtype}) + LoRA r={args.rank}: "
        f"{sum(p.numel() for p in params) / 1e6:.2f} M trainable in {time.perf_counter() - t_load:.1f}s")

    def micro_batches(step):
        chunk = ids[step * B : (step + 1) * B]
        for m in range(0, B, M):
            part = chunk[m : m + M]
            # one forward of 3M sequences: sent0 x M, sent1 x M, hard_neg x M
            yield collate([r[c] for c in range(3) for r in part], pad_id)

    def split(z, m):
        return z[:m], z[m : 2 * m], z[2 * m :]

    def train_step(step):
        opt.zero_grad(set_to_none=True)
        if B == M:
            (batch,) = list(micro_batches(step))
            loss = e5v_loss(*split(embed(decoder, batch), M))
            loss.backward()
        else:
            batches, states, reps = list(micro_batches(step)), [], []
            with torch.no_grad():
                for batch in batches:
                    states.append(torch.get_rng_state())
                    reps.append(embed(decoder, batch))
            reps = [r.detach().requires_grad_() for r in reps]
            parts = [split(r, M) for r in reps]
            loss = e5v_loss(*(torch.cat([p[c] for p in parts]) for c in range(3)))
            loss.backward()
            for batch, state, rep in zip(batches, states, reps):
                torch.set_rng_state(state)
                torch.autograd.backward(embed(decoder, batch), rep.grad)
        opt.step()
        return loss.item()

    t0 = time.perf_counter()
    loss = train_step(0)
    log(f"warm-up step: loss {loss:.4f}, {time.perf_counter() - t0:.2f}s")
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = train_step(step)
        log(f"step {step}: loss {loss:.4f}")
    seconds = time.perf_counter() - t0

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    pairs = args.steps * B
    print(json.dumps({"side": "torch+peft", "steps": args.steps, "pairs": pairs, "seconds": round(seconds, 4),
                      "pairs_per_s": round(pairs / seconds, 3), "peak_rss_mb": round(peak, 1),
                      "threads": args.threads}))


if __name__ == "__main__":
    main()
