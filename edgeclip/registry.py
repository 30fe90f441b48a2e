"""A small name → factory registry (timm-style), one per kind of thing."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from edgeclip.errors import unknown_name_error

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries; unknown names raise a `UserError` with close matches.

    `builtins` names modules that register the built-in entries; they are imported on first
    lookup (timm-style), so those modules can import the registry without an import cycle.
    """

    def __init__(self, kind: str, list_command: str = "", builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.list_command = list_command
        self._entries: dict[str, T] = {}
        self._builtins = builtins
        self._builtins_loaded = not builtins

    @property
    def entries(self) -> dict[str, T]:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            import importlib

            for module in self._builtins:
                importlib.import_module(module)
        return self._entries

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Use as `registry.register("name", obj)` or as a decorator `@registry.register("name")`."""
        if entry is not None:
            self._add(name, entry)
            return entry

        def decorator(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorator

    def _add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        try:
            return self.entries[name]
        except KeyError:
            fix = f"see `{self.list_command}`" if self.list_command else ""
            raise unknown_name_error(self.kind, name, self.entries, fix) from None

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def names(self) -> list[str]:
        return list(self.entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self.entries.items())
