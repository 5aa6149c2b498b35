"""The paper's evaluation prompts and chat formatting."""

from __future__ import annotations

from esr_utils.paths import DATA_DIR

__all__ = ["load_prompts", "chat_text", "conversation_text"]


def load_prompts(name: str = "eval") -> list[str]:
    """A prompt set shipped in `esr_utils/data/prompts_<name>.txt`, one prompt per line.

    "eval" holds the paper's 38 "explain how / how do you" prompts (App. A.5.1).
    """
    path = DATA_DIR / f"prompts_{name}.txt"
    if not path.exists():
        known = sorted(p.stem.removeprefix("prompts_") for p in DATA_DIR.glob("prompts_*.txt"))
        raise FileNotFoundError(f"no prompt set {name!r}; known sets: {known}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def chat_text(tokenizer, user_message: str) -> str:
    """The text the model sees for one user turn: its own chat template, generation prompt added.

    No system message is passed, as in the paper; templates that insert a default system block
    (Llama-3's dates, SmolLM2's "You are a helpful AI assistant named SmolLM") keep it.
    """
    if not user_message or not user_message.strip():
        raise ValueError("empty prompt")
    messages = [{"role": "user", "content": user_message}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def conversation_text(tokenizer, user_message: str, response: str) -> str:
    """A whole exchange (user turn, then the model's answer) in the model's chat template."""
    messages = [{"role": "user", "content": user_message},
                {"role": "assistant", "content": response}]
    return tokenizer.apply_chat_template(messages, tokenize=False)
