"""Prompts to send: synthetic lengths, shared prefixes, multi-turn, JSONL and ShareGPT files.

How input lengths are matched: a synthetic prompt of N tokens is N words drawn from
a fixed list of short, common English words, joined by single spaces. Each of these
words (with its leading space) is one token in the BPE vocabularies of Llama 2/3,
Mistral, Qwen2 and GPT-2 style tokenizers, so the prompt is N tokens ± the special
tokens the server adds (BOS, chat template) — when every word is one token in
the server's vocabulary. The client never tokenizes: the
server's ``usage.prompt_tokens`` is authoritative and is what the record stores as
``input_tokens`` (``extra["requested_input_tokens"]`` keeps the target).

Shared prefixes: group g's prefix is ``prefix_tokens`` words drawn from a generator
seeded by (seed, g), identical for every request of the group; the rest of the
prompt is drawn per request. Multi-turn: turn k of a conversation is sent after
turn k−1 finished; its prompt is the history (previous prompts and the generated
answers) followed by a new user message whose length is the growth of the spec's
input length minus the previous output, at least one word.

File formats:
- JSONL: one object per line with ``prompt`` (or ``messages``, a chat list) and
  optionally ``output_tokens``/``max_tokens`` and ``input_tokens``.
- ShareGPT (the JSON list ``vllm bench serve --dataset-name sharegpt`` reads): each
  entry has ``conversations`` = [{"from": "human"|"gpt", "value": text}, ...]; the
  first human turn is the prompt, the following gpt turn's length the output length.
  Lengths are counted in whitespace words (an approximation of tokens: English prose
  runs about 1.3 tokens per word with Llama-3's tokenizer); entries with fewer than 4
  words in either turn are skipped, as vLLM skips those under 4 tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..catalog.workloads import RequestSpec
from ..errors import ConfigError
from .arrivals import iter_jsonl
from .client import Prompt

__all__ = [
    "WORDS", "synthetic_text", "prompts_from_specs", "synthetic_prompts", "load_jsonl_prompts",
    "load_sharegpt_prompts", "count_words",
]

# Short common English words, chosen to be single tokens after a space in
# GPT-2-style BPE vocabularies; measured against SmolLM2's tokenizer through
# llama.cpp's /tokenize in tests/test_load_llamacpp.py (see docs/load.md).
WORDS: tuple[str, ...] = tuple("""
the of and to in is was for on are with as his they be at one have this from or had by
not but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long
make thing see him two has look more day could go come did number sound no most people my
over know water than call first who may down side been now find any new work part take
get place made live where after back little only round man year came show every good me
give our under name very through just form sentence great think say help low line differ
turn cause much mean before move right boy old too same tell does set three want air well
also play small end put home read hand port large spell add even land here must big high
such follow act why ask men change went light kind off need house picture try us again
animal point mother world near build self earth father head stand own page should country
found answer school grow study still learn plant cover food sun four between state keep eye
never last let thought city tree cross farm hard start might story saw far sea draw left
late run while press close night real life few north open seem together next white children
begin got walk example ease paper group always music those both mark often letter until mile
river car feet care second book carry took science eat room friend began idea fish mountain
stop once base hear horse cut sure watch color face wood main enough plain girl usual young
ready above ever red list though feel talk bird soon body dog family direct leave song
""".split())


def count_words(text: str) -> int:
    return len(text.split())


def synthetic_text(rng: np.random.Generator, n_words: int) -> str:
    if n_words <= 0:
        return ""
    idx = rng.integers(0, len(WORDS), n_words)
    return " ".join(WORDS[i] for i in idx)


def _prefix_text(seed: int, group: int, n_words: int) -> str:
    return synthetic_text(np.random.default_rng((seed, 7919, group)), n_words)


def prompts_from_specs(specs: Sequence[RequestSpec], *, seed: int = 0) -> list[Prompt]:
    """Synthetic prompts for request specs (from ``catalog.generate_requests``)."""
    rng = np.random.default_rng((seed, 104729))
    prev: dict[int, RequestSpec] = {}
    out: list[Prompt] = []
    for s in specs:
        if s.conversation >= 0 and s.turn > 0 and s.conversation in prev:
            p = prev[s.conversation]
            new_words = max(1, s.input_tokens - p.input_tokens - p.output_tokens)
        else:
            new_words = s.input_tokens
        pre = ""
        if s.prefix_group >= 0 and s.prefix_tokens > 0 and s.turn == 0:
            k = min(s.prefix_tokens, new_words)
            pre = _prefix_text(seed, s.prefix_group, k)
            new_words -= k
        body = synthetic_text(rng, new_words)
        text = f"{pre} {body}".strip() if pre else body
        out.append(Prompt(
            id=s.id, arrival_s=float(s.arrival_s), input_tokens=int(s.input_tokens),
            output_tokens=max(1, int(s.output_tokens)), prompt=text,
            prefix_group=s.prefix_group, prefix_tokens=s.prefix_tokens,
            conversation=s.conversation, turn=s.turn, priority=s.priority, adapter=s.adapter,
        ))
        if s.conversation >= 0:
            prev[s.conversation] = s
    return out


def synthetic_prompts(
    arrivals_s: Sequence[float],
    *,
    input_len: int,
    output_len: int,
    range_ratio: float = 0.0,
    prefix_len: int = 0,
    num_prefix_groups: int = 1,
    seed: int = 0,
) -> list[Prompt]:
    """``vllm bench serve --dataset-name random`` shapes: lengths uniform in
    [len·(1−r), len·(1+r)] (r = ``range_ratio``), plus an optional shared prefix of
    ``prefix_len`` words from one of ``num_prefix_groups`` groups (round-robin)."""
    if input_len < 1 or output_len < 1:
        raise ConfigError(f"random input/output lengths must be >= 1; got {input_len}/{output_len}")
    if not 0.0 <= range_ratio < 1.0:
        raise ConfigError(f"range ratio must be in [0, 1); got {range_ratio}")
    rng = np.random.default_rng(seed)
    n = len(arrivals_s)
    ins = rng.integers(int(input_len * (1 - range_ratio)), int(input_len * (1 + range_ratio)) + 1, n)
    outs = rng.integers(int(output_len * (1 - range_ratio)), int(output_len * (1 + range_ratio)) + 1, n)
    specs = [
        RequestSpec(
            id=f"r{i}", arrival_s=float(arrivals_s[i]),
            input_tokens=int(max(1, ins[i])) + prefix_len, output_tokens=int(max(1, outs[i])),
            prefix_group=(i % num_prefix_groups) if prefix_len > 0 else -1,
            prefix_tokens=prefix_len,
        )
        for i in range(n)
    ]
    return prompts_from_specs(specs, seed=seed)


def _attach(prompts: list[dict[str, Any]], arrivals_s: Sequence[float], default_output: int) -> list[Prompt]:
    n = len(arrivals_s)
    if not prompts:
        raise ConfigError("dataset has no usable prompts")
    out: list[Prompt] = []
    for i in range(n):
        d = prompts[i % len(prompts)]
        out.append(Prompt(
            id=f"r{i}", arrival_s=float(arrivals_s[i]),
            input_tokens=int(d.get("input_tokens") or count_words(d.get("prompt") or "") or
                             sum(count_words(m.get("content", "")) for m in d.get("messages") or [])),
            output_tokens=int(d.get("output_tokens") or default_output),
            prompt=d.get("prompt") or "", messages=d.get("messages"),
        ))
    return out


def load_jsonl_prompts(path: str | Path, arrivals_s: Sequence[float], *, default_output: int = 128) -> list[Prompt]:
    rows: list[dict[str, Any]] = []
    for n, obj in iter_jsonl(path):
        if not isinstance(obj, dict) or not ("prompt" in obj or "messages" in obj):
            raise ConfigError(f"{path}:{n}: needs a 'prompt' or 'messages' field")
        rows.append({
            "prompt": obj.get("prompt"), "messages": obj.get("messages"),
            "output_tokens": obj.get("output_tokens") or obj.get("max_tokens"),
            "input_tokens": obj.get("input_tokens"),
        })
    return _attach(rows, arrivals_s, default_output)


def load_sharegpt_prompts(path: str | Path, arrivals_s: Sequence[float], *,
                          output_len: int | None = None, seed: int = 0) -> list[Prompt]:
    """First human turn → prompt; its gpt answer's word count → output length
    (or ``output_len`` when given). Entries are shuffled with ``seed``, as vLLM does."""
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as e:
        raise ConfigError(f"{path}: not a ShareGPT JSON list ({e})") from None
    if not isinstance(data, list):
        raise ConfigError(f"{path}: ShareGPT file must be a JSON list of conversations")
    rows: list[dict[str, Any]] = []
    for entry in data:
        conv = entry.get("conversations") if isinstance(entry, dict) else None
        if not conv or len(conv) < 2:
            continue
        human = next((i for i, t in enumerate(conv) if t.get("from") in ("human", "user")), None)
        if human is None or human + 1 >= len(conv):
            continue
        prompt, answer = conv[human].get("value", ""), conv[human + 1].get("value", "")
        pw, aw = count_words(prompt), count_words(answer)
        if pw < 4 or (output_len is None and aw < 4):
            continue
        rows.append({"prompt": prompt, "input_tokens": pw, "output_tokens": output_len or aw})
    order = np.random.default_rng(seed).permutation(len(rows))
    return _attach([rows[i] for i in order], arrivals_s, output_len or 128)
