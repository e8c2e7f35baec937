"""The judged program and its judge in two processes: the solution never shares an interpreter with its tests.

The candidate process runs the solution on its own, then answers calls. The judge process runs the
problem's tests, with the solution's functions bound to proxies that send each call's arguments over a
pipe and rebuild the answer from plain data: numbers, text, bytes, lists, tuples, sets, dicts (and
handles to any other object, which compare equal only to themselves). Nothing the solution defines
or returns runs in the judge: it cannot replace `check`, `json.loads`, `assert` or `==` there, and a
pass is the judge's exit alone. Like `sandbox_server`, this module imports only the standard library.
"""

from __future__ import annotations

import builtins
import os
import struct
import sys
from typing import Any

MAX_MESSAGE_BYTES = 64 << 20  # one call or answer; a bigger answer fails its test
MAX_DEPTH = 200  # nesting of one value
MAX_ITEMS = 1_000_000  # items drawn from an iterator the solution returned
_EXCEPTIONS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception) and obj is not AssertionError
}


class SolutionError(Exception):
    """The solution failed, exited or answered something that cannot be judged."""


# ------------------------------------------------------------------ wire


def send(fd: int, obj: Any) -> None:
    import json

    data = json.dumps(obj, separators=(",", ":")).encode()
    view = memoryview(struct.pack("<I", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def receive(fd: int) -> Any:
    """One message, or None at the end of the stream; a message over the limit is an error."""
    import json

    head = _read_exactly(fd, 4)
    if head is None:
        return None
    size = struct.unpack("<I", head)[0]
    if size > MAX_MESSAGE_BYTES:
        raise SolutionError(f"an answer of {size} bytes is over the limit of {MAX_MESSAGE_BYTES}")
    data = _read_exactly(fd, size)
    if data is None:
        return None
    return json.loads(data)


def _read_exactly(fd: int, n: int) -> bytes | None:
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


# ------------------------------------------------------------------ values


def encode(value: Any, refs: dict[int, Any] | None, depth: int = 0) -> Any:
    """A value as tagged JSON; objects of other types become handles in `refs` (None: refused)."""
    if depth > MAX_DEPTH:
        raise ValueError("a value nested too deeply to judge")
    t = type(value)
    if value is None:
        return ["n"]
    if t is bool:
        return ["b", value]
    if isinstance(value, bool):
        return ["b", bool(value)]
    if isinstance(value, int):
        return ["i", hex(int(value))]
    if isinstance(value, float):
        return ["f", float(value).hex()]
    if isinstance(value, complex):
        return ["c", value.real.hex(), value.imag.hex()]
    if isinstance(value, str):
        return ["s", str(value)]
    if isinstance(value, (bytes, bytearray)):
        return ["y", bytes(value).hex()]
    if isinstance(value, range):
        return ["r", value.start, value.stop, value.step]
    if isinstance(value, dict):
        return ["d", [[encode(k, refs, depth + 1), encode(v, refs, depth + 1)] for k, v in value.items()]]
    for tag, kind in (("l", list), ("t", tuple), ("e", set), ("z", frozenset)):
        if isinstance(value, kind):
            return [tag, [encode(x, refs, depth + 1) for x in value]]
    name = t.__name__
    if name in ("Decimal", "Fraction") and t.__module__ in ("decimal", "fractions", "_decimal", "_pydecimal"):
        return ["x", name, str(value)]
    if refs is not None and isinstance(value, Ref):
        return ["h", value.ref]
    if refs is not None and hasattr(value, "__next__") and hasattr(value, "__iter__"):
        items: list[Any] = []
        for item in value:
            if len(items) >= MAX_ITEMS:
                raise ValueError(f"an iterator of more than {MAX_ITEMS} items")
            items.append(encode(item, refs, depth + 1))
        return ["g", items]
    if refs is not None:
        refs[id(value)] = value
        return ["h", id(value), name]
    raise TypeError(f"a {name} object cannot be passed to the solution")


def decode(data: Any, resolve: Any, depth: int = 0) -> Any:
    """Rebuild a value from `encode`'s form, building nothing but plain types (and `resolve`'s handles)."""
    if depth > MAX_DEPTH or type(data) is not list or not data or type(data[0]) is not str:
        raise SolutionError("a malformed answer")
    tag, rest = data[0], data[1:]
    if tag == "n":
        return None
    if tag == "b":
        return bool(rest[0] is True)
    if tag == "i":
        return int(_text(rest[0]), 16)
    if tag == "f":
        return float.fromhex(_text(rest[0]))
    if tag == "c":
        return complex(float.fromhex(_text(rest[0])), float.fromhex(_text(rest[1])))
    if tag == "s":
        return _text(rest[0])
    if tag == "y":
        return bytes.fromhex(_text(rest[0]))
    if tag == "r":
        return range(*(_int(x) for x in rest[:3]))
    if tag == "x":
        import decimal
        import fractions

        kind = {"Decimal": decimal.Decimal, "Fraction": fractions.Fraction}.get(_text(rest[0]))
        if kind is None:
            raise SolutionError("a malformed answer")
        return kind(_text(rest[1]))
    if tag == "h":
        return resolve(_int(rest[0]), _text(rest[1]) if len(rest) > 1 else "object")
    items = rest[0] if rest and type(rest[0]) is list else None
    if items is None:
        raise SolutionError("a malformed answer")
    if tag == "d":
        out = {}
        for pair in items:
            if type(pair) is not list or len(pair) != 2:
                raise SolutionError("a malformed answer")
            out[decode(pair[0], resolve, depth + 1)] = decode(pair[1], resolve, depth + 1)
        return out
    values = [decode(x, resolve, depth + 1) for x in items]
    kinds = {"l": list, "t": tuple, "e": set, "z": frozenset}
    if tag in kinds:
        return kinds[tag](values)
    if tag == "g":
        return iter(values)
    raise SolutionError("a malformed answer")


def _text(x: Any) -> str:
    if type(x) is not str:
        raise SolutionError("a malformed answer")
    return x


def _int(x: Any) -> int:
    if type(x) is not int:
        raise SolutionError("a malformed answer")
    return x


# ------------------------------------------------------------------ the judge's side


class Ref:
    """A handle on an object in the candidate process: calls and attributes go there; equal only to itself."""

    __slots__ = ("_link", "kind", "ref")

    def __init__(self, link: Link, ref: int, kind: str) -> None:
        object.__setattr__(self, "_link", link)
        object.__setattr__(self, "ref", ref)
        object.__setattr__(self, "kind", kind)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._link.request({"call": self.ref}, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._link.request({"attr": self.ref, "name": name}, (), {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.ref == self.ref

    def __hash__(self) -> int:
        return hash(self.ref)

    def __repr__(self) -> str:
        return f"<{self.kind} object of the solution>"


class Link:
    """The judge's end of the pipes to the candidate process."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.names: list[str] = []

    def start(self) -> None:
        """Wait until the solution has run; raise its failure if it did not."""
        reply = receive(self.rfd)
        if reply is None or "ready" not in reply:
            raise SolutionError(_failure(reply))
        self.names = [n for n in reply["ready"] if type(n) is str]

    def function(self, name: str) -> Any:
        return self.request({"get": name}, (), {})

    def request(self, head: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        body = dict(head)
        if args or kwargs:
            body["args"] = [encode(a, {}) for a in args]
            body["kwargs"] = [[k, encode(v, {})] for k, v in kwargs.items()]
        try:
            send(self.wfd, body)
        except OSError:
            raise SolutionError("the solution's process has ended") from None
        reply = receive(self.rfd)
        if reply is None:
            raise SolutionError("the solution's process ended during a call")
        if "ok" in reply:
            return decode(reply["ok"], lambda ref, kind: Ref(self, ref, kind))
        if "raised" in reply:
            kind = _EXCEPTIONS.get(str(reply["raised"]), SolutionError)
            raise kind(str(reply.get("message", ""))[:2000])
        raise SolutionError(_failure(reply))


def _failure(reply: Any) -> str:
    if isinstance(reply, dict) and "failed" in reply:
        return "the solution failed: " + str(reply["failed"])[:2000]
    return "the solution's process ended before it was ready"


def run_judge(source: str, wanted: list[str], entry: str | None, rfd: int, wfd: int) -> dict[str, Any]:
    """The namespace the tests run in: `candidate` is the solution's entry point, `wanted` names bound."""
    link = Link(rfd, wfd)
    link.start()
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    for name in wanted:
        if name in link.names:
            namespace[name] = link.function(name)
        elif name in getattr(sys, "stdlib_module_names", ()):
            namespace[name] = __import__(name)  # a module the solution imported and the tests use
    if entry is not None:
        namespace["candidate"] = link.function(entry) if entry in link.names else _missing(entry)
    exec(compile(source, "<tests>", "exec"), namespace)
    return namespace


def _missing(entry: str) -> Any:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise NameError(f"the solution defines no '{entry}'")

    return missing


# ------------------------------------------------------------------ the candidate's side


def serve_candidate(source: str, rfd: int, wfd: int) -> None:
    """Run the solution, say which names it defines, then answer calls until the judge hangs up."""
    import traceback

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(source, "<solution>", "exec"), namespace)
    except BaseException as exc:
        line = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        sys.stderr.write(line + "\n")
        send(wfd, {"failed": line})
        return
    send(wfd, {"ready": [k for k, v in list(namespace.items()) if callable(v) and not k.startswith("__")]})
    refs: dict[int, Any] = {}

    def resolve(ref: int, kind: str) -> Any:
        if ref not in refs:
            raise SolutionError("an unknown handle")
        return refs[ref]

    while (msg := receive(rfd)) is not None:
        try:
            if "get" in msg:
                value = namespace[msg["get"]]
            elif "attr" in msg:
                value = getattr(resolve(msg["attr"], ""), msg["name"])
            else:
                target = resolve(msg["call"], "")
                args = [decode(a, resolve) for a in msg.get("args", [])]
                kwargs = {k: decode(v, resolve) for k, v in msg.get("kwargs", [])}
                value = target(*args, **kwargs)
            reply: dict[str, Any] = {"ok": encode(value, refs)}
        except Exception as exc:
            reply = {"raised": type(exc).__name__, "message": str(exc)[:2000]}
        send(wfd, reply)
