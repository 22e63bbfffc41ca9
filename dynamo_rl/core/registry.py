"""One generic registry for every pluggable kind (advantage estimators, allocators, policy losses, modulators).

Duplicate names raise; unknown names raise with the list of valid ones. Nothing outside a registry selects an
algorithm with an if/elif chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object map for one kind of component.

    >>> LOSSES = Registry("policy loss")
    >>> @LOSSES.register("ppo_clip")
    ... def ppo_clip(): ...
    >>> LOSSES.get("ppo_clip") is ppo_clip
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; raises ``KeyError`` if the name is taken."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` (non-decorator form)."""
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} is already registered (to {self._items[name]!r})")
        self._items[name] = obj

    def get(self, name: str) -> T:
        """Return the object registered as ``name``; the error lists every valid name."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            raise KeyError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
