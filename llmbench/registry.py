"""One generic registry for every kind of plugin: backends, scorers, data sources, writers."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from llmbench.errors import UserInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps the name a YAML file or flag uses to a plugin; refuses duplicate names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, Callable[[], T]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@backends.register("vllm")`."""

        def add(item: T) -> T:
            self.add(name, item)
            return item

        return add

    def add(self, name: str, item: T) -> None:
        if name in self._items or name in self._lazy:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = item

    def remove(self, name: str) -> None:
        """Unregister `name` (a plugin withdrawn at run time, or one a test added)."""
        self._items.pop(name, None)
        self._lazy.pop(name, None)

    def add_lazy(self, name: str, target: str) -> None:
        """Register `module:attr`, imported only when first asked for (keeps torch/vllm out of start-up)."""
        if name in self._items or name in self._lazy:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        module, _, attr = target.partition(":")
        self._lazy[name] = lambda: getattr(importlib.import_module(module), attr)

    def add_entry_points(self, group: str) -> None:
        """Register third-party plugins published under an entry-point group, e.g. `llmbench.backends`."""
        for ep in entry_points(group=group):
            if ep.name not in self:
                self._lazy[ep.name] = ep.load

    def get(self, name: str) -> T:
        if name not in self._items and name in self._lazy:
            self._items[name] = self._lazy.pop(name)()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(self.names()) or 'none'}"
            raise UserInputError(f"unknown {self.kind} '{name}'", hint=hint) from None

    def names(self) -> list[str]:
        return sorted({*self._items, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
