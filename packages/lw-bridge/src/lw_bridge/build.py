"""Building a bridge for a training config: the frozen models it joins and the `BridgeConfig` that
rebuilds it (layout, answers, answer rule, model fingerprints). Used by the `lw-train` recipe and by
anything that needs a bridge of the trained shape (lw-bench)."""

from __future__ import annotations

from lw_core import FrozenLM, LwError
from lw_core.models import DTYPES
from lw_tasks import Task, task_options
from lw_tasks.task import template_fields

from lw_bridge.bridge import BridgeConfig, anchors_from_template
from lw_bridge.config import TrainConfig
from lw_bridge.fingerprint import fingerprint
from lw_bridge.layouts import split_fields


def sender_template(config: TrainConfig, task: Task) -> str:
    """What the sender reads: the task prompt around its input, or the bare input; with
    `--receiver-text-fields` only the input lines the receiver does not read (unless `--sender-fields all`)."""
    split = config.receiver_text_fields and config.sender_fields == "others"
    text = split_fields(task, config.receiver_text_fields).sender_template if split else "{text}"
    return task.template.replace("{text}", text) if config.sender_reads == "prompt" else text


def bridge_config(config: TrainConfig, task: Task, sender: FrozenLM | None, receivers: list[FrozenLM]) -> BridgeConfig:
    before, after = anchors_from_template(task.template)
    if config.receiver_reads_text and template_fields(task.template) != ["text"]:
        raise LwError(f"--receiver-reads-text needs a task prompt that reads the input through {{text}} alone; "
                      f"task {task.name!r} reads {', '.join(template_fields(task.template))}")
    return BridgeConfig(
        sender=None if sender is None else config.sender,
        layer=config.sender_layers(),
        receivers=list(config.receivers),
        d_sender=config.d_model if sender is None else sender.hidden_size,
        d_receivers=[r.hidden_size for r in receivers],
        target_rms=[round(r.embedding_rms(), 6) for r in receivers],
        num_soft_tokens=config.num_soft_tokens,
        encoder=config.encoder_config(),
        task=task.name,
        answers=list(task.answers),
        verbalizers=list(task.verbalizers),
        anchor_before=before if config.anchor_before is None else config.anchor_before,
        anchor_after=after if config.anchor_after is None else config.anchor_after,
        bos=config.bos,
        dtype={v: k for k, v in DTYPES.items()}[receivers[0].dtype],
        sender_template=sender_template(config, task),
        max_input_words=task.max_input_words,
        kind=task.kind,
        max_new_tokens=config.max_new_tokens,
        task_source=config.task,
        task_options=task_options(config),
        message_head=config.message_head_weight > 0,
        fingerprints={name: fingerprint(lm) for name, lm in zip([config.sender, *config.receivers],
                                                                [sender, *receivers], strict=True) if lm is not None},
        answer_rule=config.answer_rule,
        receiver_reads_text=config.receiver_reads_text,
        receiver_template=split_fields(task, config.receiver_text_fields).receiver_template
        if config.receiver_text_fields else "{text}",
        fusion_layout=config.fusion_layout,
        calibrate_soft_tokens=config.calibrate_soft_tokens,
    )


