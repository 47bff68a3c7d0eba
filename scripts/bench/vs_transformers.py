#!/usr/bin/env python3
"""Time the transformers reference embedding N texts and N images (one batch each), the way
E5-V does it: processor (tokenizer + LlavaNextImageProcessor) + LlavaNextModel, last token of
the final hidden state, left padding. f32 on the CPU.

    vs_transformers.py --model target/bench-models/small --batch 8 --threads 2 --json OUT

Used by vs_transformers.sh, which runs benches/embed.rs on the same inputs right after.
The texts and the image are those of benches/embed.rs.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [  # benches/embed.rs TEXTS
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=ROOT / "target/bench-models/small")
    parser.add_argument("--image", type=Path, default=ROOT / "fixtures/images/photo_chelsea_451x300.png")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kinds", default="texts,images")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch
    import transformers
    from PIL import Image
    from transformers import AutoProcessor, LlavaNextForConditionalGeneration

    torch.set_num_threads(args.threads)
    model = LlavaNextForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    vocab = model.config.text_config.vocab_size
    if model.config.image_token_id >= vocab:  # E5-V's <image> lies outside the table (never read)
        model.resize_token_embeddings(vocab + 1, mean_resizing=False)
    processor = AutoProcessor.from_pretrained(
        args.model, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1
    )
    processor.tokenizer.padding_side = "left"
    image = Image.open(args.image)
    image.load()

    def embed(kind):
        if kind == "texts":
            prompts = [TEXT_PROMPT.format(TEXTS[i % len(TEXTS)]) for i in range(args.batch)]
            enc = processor(text=prompts, padding=True, return_tensors="pt")
        else:
            enc = processor(text=[IMAGE_PROMPT] * args.batch, images=[image] * args.batch, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.model(**enc)
        return torch.nn.functional.normalize(out.last_hidden_state[:, -1], dim=-1)

    results = []
    for kind in args.kinds.split(","):
        embed(kind)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            embed(kind)
            times.append(time.perf_counter() - start)
        row = {
            "kind": kind,
            "batch": args.batch,
            "median_s": statistics.median(times),
            "min_s": min(times),
            "times_s": times,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
        results.append(row)
        print(f"transformers {kind} batch {args.batch}: median {row['median_s']:.3f} s (min {row['min_s']:.3f} s, {args.repeats} runs, {row['threads']} threads)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
