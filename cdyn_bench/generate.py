"""`cdyn-generate RUN`: text from a model trained on task=text, through its streaming step.

RUN is a run folder (or its result.json) written with train.save_weights=true. The prompt is fed in one
prefill call of LanguageModel.step, then one token per step, each sampled from the softmax of the logits over
temperature (0: the most likely token), seeded, so a sample is reproducible on the same machine and threads.
The state the step carries is the model's own (finite for the recurrent presets, the whole past for softmax).

    cdyn-run task=text model=gla train.save_weights=true out_dir=outputs/text
    cdyn-generate outputs/text/runs/gla-text-... --prompt "def " --length 300
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cdyn_bench.tasks import CHARACTER_LEVEL


def sample(model, prompt: list[int], length: int, temperature: float, generator: torch.Generator) -> list[int]:
    """`length` token ids continuing `prompt` (ids), one streaming step each after the prefill."""
    logits, caches = model.step(torch.tensor([prompt]))
    out = []
    for _ in range(length):
        last = logits[0, -1].double()
        if temperature == 0:
            token = int(last.argmax())
        else:
            token = int(torch.multinomial(torch.softmax(last / temperature, -1), 1, generator=generator))
        out.append(token)
        logits, caches = model.step(torch.tensor([[token]]), caches)
    return out


def load(run: Path):
    """(the trained model in eval mode, its task config) of a run folder with saved weights."""
    from cdyn_bench.compose import from_record
    from cdyn_bench.model import LanguageModel
    from cdyn_bench.record import RESULT, WEIGHTS, read_result

    record = run / RESULT if run.is_dir() else run
    weights = record.parent / WEIGHTS["trained"]
    if not record.exists():
        raise SystemExit(f"cdyn-generate: error: {record}: no such record; name a run folder of a finished run")
    cfg = from_record(read_result(record).config)
    if cfg.task.name not in CHARACTER_LEVEL:
        raise SystemExit(f"cdyn-generate: error: {record} is a run of task={cfg.task.name}; only text runs "
                         f"({', '.join(sorted(CHARACTER_LEVEL))}) generate text")
    if not weights.exists():
        raise SystemExit(f"cdyn-generate: error: {weights}: no trained weights; rerun the run with "
                         "train.save_weights=true")
    model = LanguageModel(cfg.model, cfg.task.vocabulary(), readout=cfg.task.readout)
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval(), cfg.task


def encode(text: str, task) -> list[int]:
    """The prompt as token ids of the task's vocabulary (bytes, or the corpus's characters)."""
    from cdyn_bench.tasks.corpus import alphabet

    if task.params["vocab"] == "bytes":
        return list(text.encode("utf-8"))
    index = {c: i for i, c in enumerate(alphabet(task.params["corpus"]))}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise SystemExit(f"cdyn-generate: error: --prompt has characters the corpus never uses: {unknown[:5]}")
    return [index[c] for c in text]


def decode(ids: list[int], task) -> str:
    from cdyn_bench.tasks.corpus import alphabet

    if task.params["vocab"] == "bytes":
        return bytes(ids).decode("utf-8", errors="replace")
    chars = alphabet(task.params["corpus"])
    return "".join(chars[i] for i in ids)


def generate(run: Path, prompt: str, length: int, temperature: float, seed: int, threads: int = 1) -> str:
    """The prompt and `length` generated characters (tokens) after it."""
    torch.set_num_threads(threads)
    model, task = load(run)
    ids = encode(prompt or "\n", task)
    with torch.no_grad():
        out = sample(model, ids, length, temperature, torch.Generator().manual_seed(seed))
    return prompt + decode(out, task)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cdyn-generate", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("run", type=Path, help="a run folder of task=text trained with train.save_weights=true")
    p.add_argument("--prompt", default="def ", help="the text to continue (default: 'def ')")
    p.add_argument("--length", type=int, default=300, help="tokens to generate (default: 300)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0 = greedy (default: 0.8)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.length < 0:
        parser().error(f"--length {args.length}: must be >= 0")
    if not args.temperature >= 0:
        parser().error(f"--temperature {args.temperature}: must be >= 0")
    if not 0 <= args.seed < 2**63:
        parser().error(f"--seed {args.seed}: must be in [0, 2^63)")
    print(generate(args.run, args.prompt, args.length, args.temperature, args.seed))
