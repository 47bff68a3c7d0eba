#!/usr/bin/env python3
"""Time the transformers reference embedding texts and images the way E5-V does it: processor
(tokenizer + LlavaNextImageProcessor) + LlavaNextModel, last token of the final hidden state,
left padding, on the CPU or a CUDA GPU (sdpa attention there). Each case is one call of N inputs, timed after a warm-up call; one
JSON line per case (the fields of benches/throughput.rs, the e5v side).

    vs_transformers.py --model target/bench-models/narrow --dtype f32 --cases texts:1,images:1

Used by vs_transformers.sh, which runs benches/throughput.rs on the same inputs right after.
The texts and the image are those of benches/throughput.rs.
"""

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [  # benches/common/mod.rs TEXTS
    "A dog runs along the beach, chasing a red ball that the waves keep carrying away.",
    "Two people are playing chess in a park while a small crowd watches every move.",
    "The stock market fell sharply today, and investors are worried about the economy.",
    "A woman is riding a horse across a wide green field under a cloudy sky.",
    "Scientists have discovered a new species of bright yellow frog in the rainforest.",
    "The city council voted to build a trial bicycle lane near the central station.",
    "Grandmother baked apple pies for the whole family every Sunday afternoon.",
    "A small boat is sailing on the calm blue sea under a bright yellow sun.",
]
WRAPPER = "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"
TEXT_PROMPT = WRAPPER.format("{}\nSummary above sentence in one word: ")
IMAGE_PROMPT = WRAPPER.format("<image>\nSummary above image in one word: ")


DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=ROOT / "target/bench-models/small")
    parser.add_argument("--image", type=Path, default=ROOT / "fixtures/images/photo_chelsea_451x300.png")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    parser.add_argument("--cases", default="texts:1,texts:8,images:1", help="KIND:N,... (one call of N inputs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also append the JSON lines to this file")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU: sdpa attention, synchronised timing)")
    args = parser.parse_args()

    import torch
    import transformers
    from PIL import Image
    from transformers import AutoProcessor, LlavaNextForConditionalGeneration

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, DTYPES[args.dtype])
    start = time.perf_counter()
    gpu = args.device.startswith("cuda")
    extra = {"attn_implementation": "sdpa"} if gpu else {}
    model = LlavaNextForConditionalGeneration.from_pretrained(args.model, dtype=dtype, **extra).eval()
    vocab = model.config.text_config.vocab_size
    if model.config.image_token_id >= vocab:  # E5-V's <image> lies outside the table (never read)
        model.resize_token_embeddings(vocab + 1, mean_resizing=False)
    processor = AutoProcessor.from_pretrained(
        args.model, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1
    )
    processor.tokenizer.padding_side = "left"
    model = model.to(args.device)
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    load_s = time.perf_counter() - start
    image = Image.open(args.image)
    image.load()

    def embed(kind, n):
        if kind == "texts":
            prompts = [TEXT_PROMPT.format(TEXTS[i % len(TEXTS)]) for i in range(n)]
            enc = processor(text=prompts, padding=True, return_tensors="pt")
        else:
            enc = processor(text=[IMAGE_PROMPT] * n, images=[image] * n, padding=True, return_tensors="pt")
            enc["pixel_values"] = enc["pixel_values"].to(dtype)
        enc = {k: v.to(args.device) for k, v in enc.items()}
        with torch.inference_mode():
            out = model.model(**enc)
        vectors = torch.nn.functional.normalize(out.last_hidden_state[:, -1].float(), dim=-1)
        sync()
        return vectors

    for case in args.cases.split(","):
        kind, n = case.split(":")
        n = int(n)
        embed(kind, n)  # warm-up
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            embed(kind, n)
            times.append(time.perf_counter() - start)
        row = {
            "side": "transformers",
            "dtype": args.dtype,
            "kind": kind,
            "batch": n,
            "median_s": statistics.median(times),
            "min_s": min(times),
            "times_s": times,
            "load_s": load_s,
            "threads": torch.get_num_threads(),
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "device": args.device,
            "peak_gpu_bytes": torch.cuda.max_memory_allocated() if gpu else None,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
        line = json.dumps(row)
        print(line, flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
