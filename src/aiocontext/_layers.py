"""``Layers``: the data of a ``ChainMap()`` context, a chain of layers each linked to the one
below it.

Each :class:`Layers` holds one layer (``top``), the task that owns it, and the
:class:`Layers` below it (``below``), which it shares with every other chain built over it. A
new layer is one small object whatever the depth: a chain of ``n`` tasks, each with a layer
of its own over its parent's, costs memory linear in ``n`` (a list of every layer per level
cost ``n`` squared). ``maps`` is still there, as :class:`collections.ChainMap` has it: a new
list of the layers, top first, made when it is read.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, TypeVar

__all__ = ["Layers", "layer", "nobody"]

_K = TypeVar("_K")
_V = TypeVar("_V")

_NOTHING: Any = object()


def nobody() -> None:
    """The owner of data made by code outside tasks (owners are called: see ``Layers``)."""
    return None


def layer(
    top: MutableMapping[_K, _V],
    owner: Callable[[], object] = nobody,
    below: Layers[_K, _V] | None = None,
) -> Layers[_K, _V]:
    """A new :class:`Layers` of ``top`` (the mapping itself, not a copy), owned by ``owner``,
    over ``below`` (shared, not copied)."""
    layers: Layers[_K, _V] = Layers.__new__(Layers)  # pyright: ignore[reportUnknownVariableType]
    layers.top = top
    layers.owner = owner
    layers.below = below
    layers.coro = None
    return layers


def _chain(maps: Iterable[MutableMapping[_K, _V]]) -> Layers[_K, _V] | None:
    """Layers of ``maps`` (top first), each owned by nobody."""
    below: Layers[_K, _V] | None = None
    for mapping in reversed(list(maps)):
        below = layer(mapping, nobody, below)
    return below


class Layers(collections.ChainMap[_K, _V]):
    """The data of a :class:`~aiocontext.ChainMap` context: a ChainMap kept as a linked chain.

    ``top`` is the first layer, the one writes go to; ``below`` the :class:`Layers` under it
    (``None`` at the bottom). ``owner()`` is the task whose own layer ``top`` is (``None``:
    code outside tasks, whose layer is never written in place; a weak reference, so that a
    task and its data form no reference cycle). ``coro`` is the coroutine of a task the
    factory is still creating, which claims the layer on its first write (see
    ``_chain_model``).

    Lookups raise no exceptions on the way (``collections.ChainMap`` raises and catches a
    ``KeyError`` for each layer that misses), and read each layer once (``get``), so a key
    deleted meanwhile by another thread is a miss, never a false ``KeyError``. Writes go to
    ``top`` without building ``maps``.
    """

    __slots__ = ("below", "coro", "owner", "top")

    top: MutableMapping[_K, _V]
    below: Layers[_K, _V] | None
    owner: Callable[[], object]
    coro: object

    def __init__(self, *maps: MutableMapping[_K, _V]) -> None:
        # (collections.ChainMap.__init__ would store a list as ``maps``.)
        self.top = maps[0] if maps else {}
        self.below = _chain(maps[1:])
        self.owner = nobody
        self.coro = None

    @property
    def maps(self) -> list[MutableMapping[_K, _V]]:
        """The layers, top first: a new list, as long as the chain."""
        maps: list[MutableMapping[_K, _V]] = []
        layers: Layers[_K, _V] | None = self
        while layers is not None:
            maps.append(layers.top)
            layers = layers.below
        return maps

    @maps.setter
    def maps(self, maps: list[MutableMapping[_K, _V]]) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self.top = maps[0] if maps else {}
        self.below = _chain(maps[1:])

    def __reduce__(self) -> tuple[type[Layers[_K, _V]], tuple[MutableMapping[_K, _V], ...]]:
        """Pickled and deep-copied as the list of its layers (owned by nobody), one level
        deep however long the chain."""
        return type(self), tuple(self.maps)

    # -- lookups ---------------------------------------------------------------------------

    def __getitem__(self, key: _K) -> _V:
        layers: Layers[_K, _V] | None = self
        while layers is not None:
            top = layers.top
            if top:  # (most layers of a deep chain are empty)
                value = top.get(key, _NOTHING)
                if value is not _NOTHING:
                    return value  # type: ignore[no-any-return]
            layers = layers.below
        return self.__missing__(key)

    def get(self, key: _K, default: Any = None) -> Any:
        layers: Layers[_K, _V] | None = self
        while layers is not None:
            top = layers.top
            if top:
                value = top.get(key, _NOTHING)
                if value is not _NOTHING:
                    return value
            layers = layers.below
        return default

    def __contains__(self, key: object) -> bool:
        layers: Layers[_K, _V] | None = self
        while layers is not None:
            if key in layers.top:
                return True
            layers = layers.below
        return False

    # -- writes go to the top layer (ChainMap's pop, popitem and clear read ``maps[0]``) ------

    def __setitem__(self, key: _K, value: _V) -> None:
        self.top[key] = value

    def __delitem__(self, key: _K) -> None:
        try:
            del self.top[key]
        except KeyError:
            raise KeyError(f"Key not found in the first mapping: {key!r}") from None
