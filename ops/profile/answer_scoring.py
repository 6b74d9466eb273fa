"""Profile one bridge training step's receiver side (soft prefix -> answer scores -> CE -> backward)
against the size of the answer set. The encoder's cost does not depend on the answers, so the soft tokens
here are a trainable tensor: what is timed is exactly `lw_bridge.losses.answer_logits` + `answer_ce` +
backward, on the real receiver.

    uv run python ops/profile/answer_scoring.py --task .logs/r52/r52.csv --answers 2 52 [--profile]
"""

from __future__ import annotations

import argparse
import time

import torch
from lw_bridge.bridge import anchors_from_template
from lw_bridge.losses import answer_ce, answer_logits
from lw_core import FrozenLM
from lw_tasks import load_task, resolve_answer_rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="rt-sentiment")
    parser.add_argument("--receiver", default="gemma3-270m")
    parser.add_argument("--answers", type=int, nargs="+", default=[2, 52])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-soft-tokens", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--rule", default="first-token")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top ops per answer count")
    args = parser.parse_args()

    torch.manual_seed(0)
    task = load_task(args.task)
    receiver = FrozenLM.load(args.receiver, dtype=args.dtype, device="cpu")
    before, after = anchors_from_template(task.template)
    all_ids = [receiver.token_ids(v) for v in task.verbalizers]
    for n in args.answers:
        ids = all_ids[:n]
        rule = resolve_answer_rule(args.rule, ids)
        lengths = [len(a) for a in ids]
        soft = torch.nn.Parameter(torch.randn(args.batch_size, args.num_soft_tokens, receiver.hidden_size) * 0.5)
        labels = torch.randint(0, len(ids), (args.batch_size,))
        context = receiver.compose([[torch.tensor(receiver.bos_ids + receiver.token_ids(before))]] * args.batch_size)
        suffix = torch.tensor(receiver.token_ids(after))

        def step(soft=soft, suffix=suffix, ids=ids, rule=rule, context=context, labels=labels):
            inputs = receiver.compose([[row, suffix] for row in soft])
            answer_ce(answer_logits(receiver, inputs, ids, rule, context), labels).backward()

        step()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = (time.perf_counter() - start) / args.steps
        print(f"answers {len(ids)} (rule {rule}, tokens {min(lengths)}-{max(lengths)}, total {sum(lengths)}): "
              f"{seconds:.2f} s/step at batch {args.batch_size}")
        if args.profile:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
