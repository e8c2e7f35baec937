"""YAML loading that remembers where every value came from, so errors can name file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from llmbench.errors import ConfigError

MAX_YAML_BYTES = 16 << 20  # suites, models and studies are hand-written: far below this
MAX_YAML_VALUES = 200_000  # values once every alias is expanded (an alias bomb multiplies them)
MAX_NUMBER_CHARS = 100  # a config's largest number has 19 digits; Python refuses ints of over 4300


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent overwrite hides typos)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _NumberTooLong(yaml.constructor.ConstructorError):
    pass


def _construct_int(loader: _LineLoader, node: yaml.ScalarNode) -> int:
    if len(node.value) > MAX_NUMBER_CHARS:  # int() of it would take long, or raise ValueError past 4300
        raise _NumberTooLong(None, None, f"a number of {len(node.value)} characters", node.start_mark)
    return int(loader.construct_yaml_int(node))  # type: ignore[no-untyped-call]


_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; returns the data and its node tree (for line numbers)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_YAML_BYTES >> 20} MiB; not a config file")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as a YAML file ({type(exc).__name__})") from None
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        _check_expansion(path, node)
        loader = _LineLoader(text)
        try:
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    except _NumberTooLong as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: {exc.problem}; no config value needs one") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from None
    return data, node


def _check_expansion(path: Path, root: yaml.Node | None) -> None:
    """Refuse a document whose aliases expand to more than MAX_YAML_VALUES values, or refer to themselves.

    Sizes are counted once per node (aliases share nodes), so the check is linear in the file.
    """
    if root is None:
        return
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > MAX_YAML_VALUES:
                raise ConfigError(
                    f"{path}:{node.start_mark.line + 1}: YAML aliases expand to more than "
                    f"{MAX_YAML_VALUES} values; a config file needs far fewer"
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ConfigError(f"{path}:{node.start_mark.line + 1}: a YAML alias refers to itself")
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise ConfigError(f"{path}:{child.start_mark.line + 1}: a YAML alias refers to itself")
            stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def node_line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[int | None, bool]:
    """Line (1-based) of the value at `loc`; the bool says whether the key itself was found."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line, False
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line, False
    return line, True


def line_of(path: Path, loc: tuple[int | str, ...]) -> int | None:
    """Line (1-based) of the value at `loc` in the YAML file at `path`; None when it cannot be told."""
    try:
        _, node = load_yaml(path)
    except Exception:
        return None
    line, _found = node_line_of(node, loc)
    return line


def validate_yaml(
    model: type[BaseModel],
    path: Path,
    data: Any,
    node: yaml.Node | None,
    *,
    context: dict[str, Any] | None = None,
) -> Any:
    """Validate `data` against a pydantic model; the first error names file, line and field."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line, _ = node_line_of(node, loc)
        where = f"{path}:{line}" if line else str(path)
        if err["type"] == "extra_forbidden":
            msg = f"unknown key '{loc[-1]}' at {field}"
            allowed = _allowed_keys(model, loc[:-1])
            if allowed:
                import difflib

                close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
                msg += f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(allowed)})"
        elif err["type"] == "missing":
            msg = f"missing required key '{loc[-1]}' at {field}"
        else:
            msg = f"{field}: {err['msg']}"
        more = len(exc.errors()) - 1
        if more:
            msg += f" (+{more} more error{'s' if more > 1 else ''})"
        raise ConfigError(f"{where}: {msg}") from None


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the sub-model at `loc`, for a did-you-mean hint."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _unwrap(info.annotation, typing)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(annotation: Any, typing: Any) -> Any:
    """The first BaseModel inside Optional[...] / list[...] / dict[..., ...]."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = _unwrap_args(arg, typing)
        if inner is not None:
            return inner
    return annotation


def _unwrap_args(annotation: Any, typing: Any) -> Any:
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
