"""Token ids and loss labels for one example, masked as the paper's recipe (App. A.3.5).

The text is the model's own chat template with the whole exchange. Labels are -100 (no loss) on
the template up to the assistant turn and on a self-correction example's off-topic passage; the
loss falls on the restart sentence, the recovery and the end-of-turn token. A normal example
trains on its whole answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from esr_utils.finetuning.examples import Example
from esr_utils.prompts import chat_text

__all__ = ["IGNORE", "Encoded", "collate", "encode_example"]

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_trained(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def encode_example(tokenizer, example: Example, max_len: int) -> Encoded:
    """Tokenize `example` piecewise so that mask boundaries fall exactly between the parts.

    Parts: [template + user turn + assistant header] [prefix] [target + end of turn]. Each part is
    tokenized on its own and the ids concatenated, so no token straddles a boundary. Examples
    longer than `max_len` are cut at the end (the target's tail), never at the start.
    """
    head = chat_text(tokenizer, example.prompt)
    end = tokenizer.eos_token  # SmolLM2's <|im_end|>, what the chat template closes a turn with
    parts = [(head, False), (example.prefix, False), (example.target + end, True)]
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in parts:
        if not text:
            continue
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    ids, labels = ids[:max_len], labels[:max_len]
    if all(label == IGNORE for label in labels):
        raise ValueError(f"example for prompt {example.prompt_id} has no trained token within "
                         f"max_len={max_len}: raise max_len or shorten its off-topic passage")
    return Encoded(ids, labels)


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding gets attention 0 and label -100."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
