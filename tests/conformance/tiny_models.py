"""Tiny random-weight models for the conformance suite, built locally (nothing downloaded).

Real server software (vLLM, llama.cpp) needs a real model directory: a tokenizer with a chat
template, a config and weights. These models are Qwen2-shaped with random weights, so their
text is garbage (U+FFFD, control characters, sometimes NUL): the protocol, templates and
tokenization are real, and the output is as hostile as a model's can be.

Run with a Python that has ``torch``, ``transformers``, ``tokenizers`` and ``safetensors``
(the conformance venv that ``scripts/conformance/setup.sh`` builds)::

    python tests/conformance/tiny_models.py all OUT_ROOT       # every model below
    python tests/conformance/tiny_models.py generator OUT_DIR --template llama3

``OUT_ROOT`` then holds ``generator-qwen25``, ``generator-llama3``, ``generator-qwen3`` (the
same weights under three chat templates), ``prm`` (``Qwen2ForProcessRewardModel``, for
vLLM's ``/pooling`` with ``step_tag_id`` = the id of ``<extra_0>``) and ``orm``
(``Qwen2ForSequenceClassification`` with one label, for ``/classify``), plus
``manifest.json`` with the token ids a test needs.

The tokenizer is a byte-level BPE trained on the GSM8K and Game of 24 text in
``$TTC_SHARED_DATA`` (default ``<repo>/../shared/data``), falling back to the samples kept in
``ttc_sim/data`` when that folder is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

#: Special tokens every template below needs, plus the PRM's step tag.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<extra_0>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
#: Single tokens that are text, not special (as in Qwen3's tokenizer): the server keeps
#: them in its output, so a stop string ``</think>`` can match.
THINK_TOKENS = ["<think>", "</think>"]
VOCAB_SIZE = 1024
#: The embedding is padded past the tokenizer's vocabulary, as real checkpoints are.
MODEL_VOCAB = 1088
SEED = 1234

# Qwen2.5's template, without tools: system default, `<|im_start|>role\n...<|im_end|>`.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Llama 3's template: every message's content is trimmed (`| trim`), which is what cuts a
# continued step's trailing delimiter under `continue_final_message`.
LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

# Qwen3's template, without tools: an assistant turn after the last user query is re-rendered
# as `<think>\n` + reasoning.strip + `\n</think>\n\n` + answer (an empty think block when the
# content has no `</think>`), and `enable_thinking=false` appends an empty think block to
# the generation prompt.
QWEN3_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}"
    "{%- set index = (messages|length - 1) - loop.index0 %}"
    "{%- if ns.multi_step_tool and message.role == 'user' %}"
    "{%- set ns.multi_step_tool = false %}"
    "{%- set ns.last_query_index = index %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message.content is string %}{%- set content = message.content %}"
    "{%- else %}{%- set content = '' %}{%- endif %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set reasoning_content = '' %}"
    "{%- if message.reasoning_content is string %}"
    "{%- set reasoning_content = message.reasoning_content %}"
    "{%- else %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n')"
    ".split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index %}"
    "{%- if loop.last or (not loop.last and reasoning_content) %}"
    "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n')"
    " + '\\n</think>\\n\\n' + content.lstrip('\\n') }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content }}"
    "{%- endif %}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content }}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

TEMPLATES = {"qwen25": QWEN25_TEMPLATE, "llama3": LLAMA3_TEMPLATE, "qwen3": QWEN3_TEMPLATE}
#: The end-of-turn token each template's turns end with (the generator's EOS under it).
END_OF_TURN = {"qwen25": "<|im_end|>", "llama3": "<|eot_id|>", "qwen3": "<|im_end|>"}


def shared_data_dir() -> Path:
    """``$TTC_SHARED_DATA``, else ``../shared/data`` next to the clone (where CI puts it)."""
    return Path(os.environ.get("TTC_SHARED_DATA") or REPO.parent / "shared" / "data")


def corpus_lines() -> Iterator[str]:
    """Training text for the tokenizer: GSM8K questions and solutions, Game of 24 rows."""
    shared = shared_data_dir()
    gsm = shared / "gsm8k_test.jsonl"
    if not gsm.exists():
        gsm = REPO / "ttc_sim" / "data" / "gsm8k_sample.jsonl"
    game24 = shared / "game24.csv"
    if not game24.exists():
        game24 = REPO / "ttc_sim" / "data" / "game24.csv"
    with gsm.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            yield row["question"]
            yield row["answer"]
    with game24.open(encoding="utf-8") as f:
        yield from f


def _config(**extra: Any) -> Any:
    from transformers import Qwen2Config

    # head_dim 64 (128 / 2 heads): vLLM's CPU attention rejects 16.
    return Qwen2Config(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=MODEL_VOCAB,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        torch_dtype="float32",
        **extra,
    )


def build_tokenizer(out_dir: Path, template: str = "qwen25") -> Any:
    """Train the byte-level BPE and save it with ``template``'s chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in THINK_TOKENS])
    eot = END_OF_TURN[template]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>" if template == "llama3" else None,
        eos_token=eot,
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (eot, "<|endoftext|>")],
        model_max_length=4096,
    )
    fast.chat_template = TEMPLATES[template]
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return fast


#: How much the thinking generator's ``</think>`` embedding is scaled up: with tied
#: embeddings its logit grows with it, so the model often closes a thought after a few
#: tokens, as budget forcing needs to be exercised (random weights alone almost never pick
#: one token out of a thousand).
THINK_CLOSE_SCALE = 12.0


def _random_causal_lm(tokenizer: Any, template: str) -> Any:
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(SEED)
    eos = tokenizer.convert_tokens_to_ids(END_OF_TURN[template])
    cfg = _config(eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    cfg.architectures = ["Qwen2ForCausalLM"]
    model = Qwen2ForCausalLM(cfg)
    if template == "qwen3":
        close = tokenizer.convert_tokens_to_ids("</think>")
        with torch.no_grad():
            model.get_input_embeddings().weight[close] *= THINK_CLOSE_SCALE
    return model


def build_generator(out_dir: str | Path, template: str = "qwen25") -> Path:
    """A Qwen2-shaped random-weight generator with ``template``'s chat template.

    The weights do not depend on the template (same seed), so the generators differ only in
    how their server renders a chat, except that the thinking one (``qwen3``) closes its
    thoughts early and often (:data:`THINK_CLOSE_SCALE`).
    """
    out = Path(out_dir)
    tokenizer = build_tokenizer(out, template)
    model = _random_causal_lm(tokenizer, template)
    model.save_pretrained(str(out), safe_serialization=True)
    _write_generation_config(out, tokenizer, template)
    return out


def _write_generation_config(out: Path, tokenizer: Any, template: str) -> None:
    # Only the stop token: no sampling defaults that the server would apply silently.
    eos = tokenizer.convert_tokens_to_ids(END_OF_TURN[template])
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))


def build_prm(out_dir: str | Path) -> Path:
    """``Qwen2ForProcessRewardModel`` (the Qwen2.5-Math-PRM shape vLLM serves on ``/pooling``).

    The same backbone as the generator, no ``lm_head``, and a two-layer ``score`` head
    (``score.0``: hidden x hidden, ReLU, ``score.2``: 2 x hidden) scoring each step tag.
    """
    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    tokenizer = build_tokenizer(out, "qwen25")
    model = _random_causal_lm(tokenizer, "qwen25")
    state = {
        k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("lm_head")
    }
    hidden = model.config.hidden_size
    gen = torch.Generator().manual_seed(SEED + 1)
    state["score.0.weight"] = torch.randn(hidden, hidden, generator=gen) * 0.1
    state["score.0.bias"] = torch.zeros(hidden)
    state["score.2.weight"] = torch.randn(2, hidden, generator=gen) * 0.1
    state["score.2.bias"] = torch.zeros(2)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.update(architectures=["Qwen2ForProcessRewardModel"], num_labels=2)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out


def build_orm(out_dir: str | Path) -> Path:
    """``Qwen2ForSequenceClassification`` with one label: an outcome reward model for
    vLLM's ``/classify`` (a sigmoid probability per input)."""
    import torch
    from transformers import Qwen2ForSequenceClassification

    out = Path(out_dir)
    tokenizer = build_tokenizer(out, "qwen25")
    torch.manual_seed(SEED)
    cfg = _config(num_labels=1, pad_token_id=tokenizer.pad_token_id)
    cfg.architectures = ["Qwen2ForSequenceClassification"]
    model = Qwen2ForSequenceClassification(cfg)
    model.save_pretrained(str(out), safe_serialization=True)
    return out


def build_all(root: str | Path) -> dict[str, Any]:
    """Every model the conformance suite serves, and ``manifest.json`` describing them."""
    out = Path(root)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for template in TEMPLATES:
        build_generator(tmp / f"generator-{template}", template)
    build_prm(tmp / "prm")
    build_orm(tmp / "orm")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp / "prm"))
    manifest = {
        "generators": {t: f"generator-{t}" for t in TEMPLATES},
        "prm": "prm",
        "orm": "orm",
        "step_tag": "<extra_0>",
        "step_tag_id": tok.convert_tokens_to_ids("<extra_0>"),
        "tokenizer_vocab": len(tok),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # atomic: a half-built tree is never taken for a cached one
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("all").add_argument("out")
    gen = sub.add_parser("generator")
    gen.add_argument("out")
    gen.add_argument("--template", choices=sorted(TEMPLATES), default="qwen25")
    sub.add_parser("prm").add_argument("out")
    sub.add_parser("orm").add_argument("out")
    args = parser.parse_args(argv)
    if args.what == "all":
        print(json.dumps(build_all(args.out)))
    elif args.what == "generator":
        print(build_generator(args.out, args.template))
    elif args.what == "prm":
        print(build_prm(args.out))
    else:
        print(build_orm(args.out))


if __name__ == "__main__":
    main()
