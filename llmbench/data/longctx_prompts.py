"""Long-context data: needle retrieval and padded document QA, sized in the model's own tokens.

Each prompt is fitted to its target length by `llmbench.data.fitting` (re-exported here), which states
the guarantee: `target - FIT_TOLERANCE <= prompt tokens + output_budget <= target`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

from llmbench.config.strict import MAX_PROMPT_TOKENS, MAX_SEED, MAX_TOKENS, SaneNumbers
from llmbench.data.base import DataContext, Sample
from llmbench.data.fitting import FIT_TOLERANCE, Filler, Fitted, Insert, PromptMeter, fit_prompt
from llmbench.errors import ConfigError, DataError, validation_line
from llmbench.hashing import stable_hash

__all__ = [
    "DOCQA_TEMPLATE",
    "FIT_TOLERANCE",
    "NEEDLE_TEMPLATE",
    "DocQAOptions",
    "Filler",
    "Fitted",
    "Insert",
    "NeedleOptions",
    "PromptMeter",
    "docqa",
    "fit_prompt",
    "needle",
    "tokenizer_fingerprint",
]

log = logging.getLogger(__name__)

_VERSION = "1"  # bump when generated samples change: the cache key includes it
_REPO_DATA = Path(__file__).resolve().parents[2] / "suites" / "data" / "longctx"
# fmt: off
_CITIES = (  # needle keys: one word each, none of them in the filler
    "Lisbon", "Oslo", "Nairobi", "Lima", "Hanoi", "Quito", "Dakar", "Tbilisi", "Reykjavik", "Montevideo",
    "Krakow", "Valparaiso", "Bergen", "Marrakesh", "Cusco", "Tallinn", "Windhoek", "Hobart", "Antwerp",
    "Kyoto", "Zagreb", "Asuncion", "Porto", "Gdansk", "Mombasa", "Ljubljana", "Cordoba", "Tromso", "Bilbao",
    "Cebu", "Salvador", "Tampere", "Trieste", "Vilnius", "Accra", "Kathmandu", "Adelaide", "Halifax",
    "Riga", "Seville",
)
# fmt: on

NEEDLE_TEMPLATE = (
    "Below is a long text. Some facts you will be asked about are hidden in it.\n\n"
    "<text>\n{context}\n</text>\n\n{question}"
)
DOCQA_TEMPLATE = (
    "Below is a long text. Somewhere in it is a document with a title, among unrelated passages.\n\n"
    "<text>\n{context}\n</text>\n\nQuestion about the document: {question}\nAnswer in a few words."
)


class _Options(SaneNumbers):
    """Options shared by the long-context generators, as written in the suite YAML."""

    model_config = ConfigDict(extra="forbid")

    lengths: list[Annotated[int, Field(gt=0, le=MAX_PROMPT_TOKENS)] | Literal["max"]] = Field(
        default=[4096], min_length=1
    )
    depths: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default=[0.5], min_length=1)
    output_budget: int = Field(default=32, ge=1, le=MAX_TOKENS)  # tokens reserved for the answer
    system: str | None = None  # the suite's system prompt, if any: it is measured too
    chat: bool | None = None  # apply the chat template; default: if the tokenizer has one
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)  # default: the run's seed
    haystack: str | None = None  # filler prose file, relative to the suite
    prompt_template: str = ""  # the user message, with {context} and {question}

    @field_validator("depths")
    @classmethod
    def _distinct_depths(cls, v: list[float]) -> list[float]:
        if len({f"{d:.2f}" for d in v}) != len(v):
            raise ValueError("depths must differ at two decimals (they name the samples)")
        return v


class NeedleOptions(_Options):
    """Options of the `needle` generator."""

    needles_per_prompt: int = Field(default=1, ge=1, le=len(_CITIES))
    retrieve: Literal["one", "all"] = "all"
    samples_per_point: int = Field(default=1, ge=1)
    prompt_template: str = NEEDLE_TEMPLATE


class DocQAOptions(_Options):
    """Options of the `docqa` generator."""

    documents: str | None = None  # JSONL of {id, title, document, question, answer}, relative to the suite
    prompt_template: str = DOCQA_TEMPLATE


@dataclass(frozen=True)
class _Item:
    """One thing to plant and ask about, expanded over the length x depth grid."""

    stem: str  # sample ids read f"{stem}-L{length}-D{depth:.2f}{suffix}"
    suffix: str
    texts: tuple[str, ...]  # the first goes at the grid's depth, the others spread evenly after it
    sep: str
    question: str
    reference: Any
    fields: dict[str, Any]
    metadata: dict[str, Any]
    filler_seed: float


def needle(options: dict[str, Any], ctx: DataContext) -> list[Sample]:
    """Needle-in-a-haystack: 7-digit 'magic numbers' keyed by city, planted at depths, at exact token lengths."""
    opts = _parse(NeedleOptions, options, "needle")
    seed = ctx.seed if opts.seed is None else opts.seed
    k = opts.needles_per_prompt
    items: list[_Item] = []
    for i in range(opts.samples_per_point):
        # Repetition i keeps its needles and filler order at every length and depth: only the axis varies.
        rng = random.Random(f"needle:{seed}:{i}")
        cities = rng.sample(_CITIES, k)
        values = [str(v) for v in rng.sample(range(1_000_000, 10_000_000), k)]
        texts = tuple(
            f"The special magic number for {c} is {v}." for c, v in zip(cities, values, strict=True)
        )
        question, reference = _needle_question(cities, values, opts.retrieve)
        items.append(
            _Item("needle", f"-i{i}", texts, " ", question, reference, {}, {"n_needles": k}, rng.random())
        )
    return _generate("needle", opts, ctx, items)


def _needle_question(cities: list[str], values: list[str], retrieve: str) -> tuple[str, str | list[str]]:
    if len(cities) == 1 or retrieve == "one":
        ask = f"What is the special magic number for {cities[0]} mentioned in the text? Answer with the number only."
        return ask, values[0]
    names = ", ".join(cities[:-1]) + f" and {cities[-1]}"
    ask = f"What are the special magic numbers for {names} mentioned in the text? Answer with each city and its number."
    return ask, values


def docqa(options: dict[str, Any], ctx: DataContext) -> list[Sample]:
    """Long-document QA: short documents with one question each, padded with filler to exact token lengths."""
    opts = _parse(DocQAOptions, options, "docqa")
    seed = ctx.seed if opts.seed is None else opts.seed
    items = []
    for rec in _read_documents(_data_path(opts.documents, "docqa_mini.jsonl", ctx)):
        text = f"{rec['title']}\n\n{rec['document']}"
        filler_seed = random.Random(f"docqa:{seed}:{rec['id']}").random()
        fields, meta = {"title": rec["title"]}, {"doc_id": rec["id"]}
        items.append(_Item(f"docqa-{rec['id']}", "", (text,), "\n\n", rec["question"], rec["answer"], fields, meta, filler_seed))  # fmt: skip
    return _generate("docqa", opts, ctx, items)


def _generate(name: str, opts: _Options, ctx: DataContext, items: list[_Item]) -> list[Sample]:
    """Resolve lengths, then return the samples from the on-disk cache or build and store them."""
    tok = ctx.tokenizer
    if tok is None:
        raise DataError(
            f"the '{name}' data set needs the model's tokenizer to size its prompts",
            hint="long-context tasks need a backend with a local tokenizer",
        )
    opts = _with_task_prompt(name, opts, ctx)
    targets = _resolve_lengths(name, opts.lengths, ctx, tok)
    paragraphs = _read_haystack(_data_path(opts.haystack, "haystack.txt", ctx))
    key = stable_hash({
        "generator": name, "version": _VERSION, "options": opts.model_dump(), "targets": targets,
        "items": [dataclasses.astuple(it) for it in items], "haystack": paragraphs,
        "tokenizer": tokenizer_fingerprint(tok),
    })  # fmt: skip
    path = _cache_dir() / f"{name}-{key}.json"
    samples = _load_cache(path)
    if samples is None:
        samples = _expand(name, opts, tok, paragraphs, items, targets)
        if not samples:
            raise DataError(f"the '{name}' data set produced no samples", hint="raise the lengths")
        _store_cache(path, samples)
    return samples


def _with_task_prompt(name: str, opts: _Options, ctx: DataContext) -> _Options:
    """The options with the system prompt and chat mode the task will really send, or a ConfigError.

    The generator measures the whole prompt to hit its target length, so the task's prompt must pass
    the generated text through unchanged, and agree with any system/chat option given here.
    """
    prompt = ctx.prompt
    if prompt is None:  # scored offline, or called directly: the options say it all
        return opts
    if prompt.template.replace(" ", "") != "{{prompt}}" or prompt.few_shot or prompt.assistant_prefix:
        raise ConfigError(
            f"{name}: the task's prompt must be template '{{{{ prompt }}}}' with no few_shot or "
            "assistant_prefix: this data set sizes the whole prompt to its target length itself",
            hint="word the message with the dataset option prompt_template ({context}, {question})",
        )
    chat = prompt.mode == "chat"
    if opts.chat is not None and opts.chat != chat:
        raise ConfigError(
            f"{name}: dataset option chat: {opts.chat}, but the task's prompt.mode is {prompt.mode}"
        )
    if opts.system is not None and opts.system != prompt.system:
        raise ConfigError(
            f"{name}: dataset option system differs from the task's prompt.system",
            hint="set the system prompt once, under the task's prompt",
        )
    return opts.model_copy(update={"system": prompt.system, "chat": chat})


def _expand(
    name: str, opts: _Options, tok: Any, paragraphs: list[str], items: list[_Item], targets: list[int]
) -> list[Sample]:
    meter = PromptMeter(tok, opts.prompt_template, opts.system, opts.chat)
    samples: list[Sample] = []
    for item in items:
        filler = Filler(tok, paragraphs, random.Random(item.filler_seed), max(targets, default=0))
        k = len(item.texts)
        for target, depth in itertools.product(targets, opts.depths):
            inserts = [
                Insert((depth + j / k) % 1.0 if j else depth, t, item.sep) for j, t in enumerate(item.texts)
            ]
            fitted = fit_prompt(meter, filler, inserts, item.question, target, opts.output_budget)
            if fitted is None:
                log.warning(
                    "%s: %s does not fit in %d tokens; skipped", name, item.stem + item.suffix, target
                )
                continue
            samples.append(Sample(
                id=f"{item.stem}-L{target}-D{depth:.2f}{item.suffix}",
                fields={"context": fitted.context, "question": item.question, "prompt": fitted.prompt, **item.fields},
                reference=item.reference,
                metadata={"length": target, "depth": depth, "actual_tokens": fitted.prompt_tokens,
                          "actual_depth": round(fitted.insert_depths[0], 3), **item.metadata},
            ))  # fmt: skip
    return samples


def _resolve_lengths(name: str, lengths: list[int | Literal["max"]], ctx: DataContext, tok: Any) -> list[int]:
    """Turn 'max' into the model's length and drop lengths the model cannot hold (with a warning)."""
    max_len = ctx.max_model_len
    if max_len is None:
        tok_max = getattr(tok, "model_max_length", None)
        max_len = tok_max if isinstance(tok_max, int) and tok_max < 10_000_000 else None
    targets: list[int] = []
    for length in lengths:
        if length == "max":
            if max_len is None:
                raise ConfigError(f"{name}: length 'max' needs the model's max_model_len")
            length = max_len
        assert isinstance(length, int)
        if ctx.max_model_len is not None and length > ctx.max_model_len:
            log.warning(
                "%s: length %d exceeds the model's max_model_len %d; skipped", name, length, ctx.max_model_len
            )
            continue
        if length not in targets:
            targets.append(length)
    return targets


def tokenizer_fingerprint(tok: Any) -> str:
    """A content hash of a tokenizer (vocabulary, merges, chat template): the cache key's model part."""
    backend = getattr(tok, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else json.dumps(sorted(tok.get_vocab().items()))
    return _sha(blob + "\0" + str(getattr(tok, "chat_template", None) or ""))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_dir() -> Path:
    from llmbench.testing.tinymodel import cache_root

    return cache_root() / "data" / "longctx"


def _load_cache(path: Path) -> list[Sample] | None:
    try:
        return [Sample(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring unreadable long-context cache file %s", path)
        return None


def _store_cache(path: Path, samples: list[Sample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": s.id, "fields": s.fields, "reference": s.reference, "metadata": s.metadata} for s in samples
    ]
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)  # atomic: a concurrent reader sees the old file or the whole new one


def _parse(model: type[_Options], options: dict[str, Any], name: str) -> Any:
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(f"{name} options: {validation_line(exc)}") from None


def _data_path(given: str | None, default: str, ctx: DataContext) -> Path:
    if given is not None:
        path = Path(given) if Path(given).is_absolute() else ctx.suite_dir / given
    else:
        beside_suite = ctx.suite_dir / "data" / "longctx" / default
        path = beside_suite if beside_suite.exists() else _REPO_DATA / default
    if not path.exists():
        raise DataError(f"{path}: long-context data file not found")
    return path


def _read_haystack(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({type(exc).__name__})") from None
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    if not paragraphs:
        raise DataError(f"{path}: the haystack file holds no text")
    return paragraphs


def _read_documents(path: Path) -> list[dict[str, str]]:
    records: list[dict[str, str]] = []
    from llmbench.data.readers import read_jsonl

    for lineno, rec in enumerate(read_jsonl(path), 1):
        if rec is None:
            continue
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{lineno}: a record is not an object")
        missing = [
            k for k in ("id", "title", "document", "question", "answer") if not isinstance(rec.get(k), str)
        ]
        if missing:
            raise DataError(f"{path}:{lineno}: missing or non-text field(s): {', '.join(missing)}")
        records.append(rec)
    return records
