"""Propagation policies: what a child task's data is, given its parent's.

A policy is a frozen value object with two methods. :meth:`PropagationPolicy.inherit` turns
the creator's mapping into the new task's mapping when a task is spawned;
:meth:`PropagationPolicy.root` makes the mapping of a task that has nothing to inherit from.
"""

from __future__ import annotations

import abc
import collections
import copy
from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

import attrs

__all__ = [
    "ChainMap",
    "Copy",
    "DeepCopy",
    "Layers",
    "PropagationPolicy",
    "Share",
    "layers_over",
    "nobody",
]

_K = TypeVar("_K")
_V = TypeVar("_V")


def layers_over(
    maps: list[MutableMapping[_K, _V]],
    owner: Callable[[], object] | None = None,
    below: list[Callable[[], object]] | None = None,
) -> Layers[_K, _V]:
    """Layers made of ``maps`` (the list itself, not a copy), the first one on top.

    ``owner`` and ``below`` say whose each layer is (see :class:`Layers`); by default
    nobody's.
    """
    layers: Layers[_K, _V] = Layers.__new__(Layers)  # pyright: ignore[reportUnknownVariableType]
    layers.maps = maps
    layers.owner = nobody if owner is None else owner
    layers.below = [nobody] * (len(maps) - 1) if below is None else below
    layers.coro = None
    return layers


def nobody() -> None:
    """The owner of data made by code outside tasks (owners are called: see ``Layers``)."""
    return None


_NOTHING: Any = object()


class Layers(collections.ChainMap[_K, _V]):
    """The data of a :class:`ChainMap` context: a ChainMap whose lookups raise no exceptions.

    ``collections.ChainMap`` raises and catches a ``KeyError`` for each layer that misses;
    with a layer per task generation, that made reads in deep task trees slow. Each layer is
    read once (``get``), so a key deleted meanwhile by another thread is a miss, never a
    false ``KeyError``.

    ``owner()`` is the task whose own layer ``maps[0]`` is (``None``: code outside tasks,
    whose layer is never written in place; a weak reference, so that a task and its data
    form no reference cycle), and ``below`` holds the owners of ``maps[1:]``. ``coro`` is the
    coroutine of a task the factory is still creating, which claims the layers on its first
    write (see ``_chain_model``).
    """

    owner: Callable[[], object]
    below: list[Callable[[], object]]
    coro: object

    def __init__(self, *maps: MutableMapping[_K, _V]) -> None:
        super().__init__(*maps)
        self.owner = nobody
        self.below = [nobody] * (len(self.maps) - 1)
        self.coro = None

    def __getitem__(self, key: _K) -> _V:
        for mapping in self.maps:
            value = mapping.get(key, _NOTHING)
            if value is not _NOTHING:
                return value  # type: ignore[no-any-return]
        return self.__missing__(key)

    def get(self, key: _K, default: Any = None) -> Any:
        for mapping in self.maps:
            value = mapping.get(key, _NOTHING)
            if value is not _NOTHING:
                return value
        return default

    def __contains__(self, key: object) -> bool:
        return any(key in mapping for mapping in self.maps)


class PropagationPolicy(abc.ABC):
    """What a child task's data is, given the data of the task (or code) that created it.

    Subclass it to write your own policy: implement :meth:`inherit`, and override :meth:`root`
    if a fresh task should not start with an empty ``dict``. Make policies immutable value
    objects (``@attrs.frozen`` is the easy way) so that they compare and hash by value.

    Example:
        >>> import attrs
        >>> @attrs.frozen
        ... class Fresh(PropagationPolicy):
        ...     '''Every task starts empty: nothing is inherited.'''
        ...     def inherit(self, parent):
        ...         return {}
        >>> Fresh().inherit({"request_id": "r1"})
        {}
    """

    __slots__ = ()

    @abc.abstractmethod
    def inherit(self, parent: MutableMapping[_K, _V], /) -> MutableMapping[_K, _V]:
        """Return the data a new task starts with.

        Called for a custom policy's context when a task is made through the task
        factory (in the creator's thread, before the task exists), and lazily, at its first
        access, in a task that was made without it (``asyncio.Task(...)`` directly). The
        built-in policies' data models do the same work without calling it (see
        ``docs/design.md``), except ``DeepCopy()``, whose copies it makes.

        Args:
            parent: The creator's live mapping.

        Returns:
            The child's mapping: ``parent`` itself to share it, or a new mapping. Anything
            that is not a mutable mapping makes task creation fail with a ``TypeError``.
        """

    def root(self) -> MutableMapping[Any, Any]:
        """Return the data of a task that has no parent data (a new empty ``dict``).

        Returns:
            A new mapping, never one that is shared with another task.
        """
        return {}


@attrs.frozen
class Share(PropagationPolicy):
    """Children get their parent's mapping itself: every write is seen by the whole tree.

    Example:
        >>> parent = {"user": "ann"}
        >>> Share().inherit(parent) is parent
        True
    """

    def inherit(self, parent: MutableMapping[_K, _V], /) -> MutableMapping[_K, _V]:
        """Return ``parent`` itself."""
        return parent


@attrs.frozen
class Copy(PropagationPolicy):
    """Children get a shallow copy: new keys stay private, mutated values are shared.

    This is the default policy of :class:`~aiocontext.Context`.

    Example:
        >>> parent = {"user": "ann", "tags": []}
        >>> child = Copy().inherit(parent)
        >>> child["user"] = "bob"
        >>> child["tags"].append("shared")
        >>> parent
        {'user': 'ann', 'tags': ['shared']}
    """

    def inherit(self, parent: MutableMapping[_K, _V], /) -> MutableMapping[_K, _V]:
        """Return a shallow copy of ``parent``, of the same type.

        (For ``Copy()`` contexts nothing calls this: a context's data is a dict that is
        replaced, never changed, on every write, so a child that starts with its creator's
        dict observes exactly a shallow copy, and spawning costs the same for 3 keys or
        1,000.)
        """
        if isinstance(parent, dict) and type(parent) is dict:
            return parent.copy()
        return copy.copy(parent)


@attrs.frozen
class DeepCopy(PropagationPolicy):
    """Children get a deep copy (``copy.deepcopy``): nothing is shared with the parent.

    Every value must support ``copy.deepcopy``; a value that does not makes task creation
    fail with the original error, noted with the key that could not be copied.

    Example:
        >>> parent = {"tags": ["a"]}
        >>> child = DeepCopy().inherit(parent)
        >>> child["tags"].append("b")
        >>> parent
        {'tags': ['a']}
    """

    def inherit(self, parent: MutableMapping[_K, _V], /) -> MutableMapping[_K, _V]:
        """Return ``copy.deepcopy(parent)``.

        Raises:
            Exception: Whatever ``copy.deepcopy`` raised, with a note naming the first key
                whose value cannot be copied.
        """
        # A dict is first copied in one step: threads writing to it meanwhile cannot make
        # the deep copy fail with "dictionary changed size during iteration".
        source = parent.copy() if isinstance(parent, dict) and type(parent) is dict else parent
        try:
            return copy.deepcopy(source)
        except Exception as exc:
            for key, value in parent.items():
                try:
                    copy.deepcopy(value)
                except Exception:  # noqa: BLE001 - we only look for the culprit
                    exc.add_note(f"DeepCopy(): the value of key {key!r} cannot be deep-copied")
                    break
            raise


@attrs.frozen
class ChainMap(PropagationPolicy):
    """Children get a new layer over their parent's layers (a :class:`collections.ChainMap`).

    A child's writes and deletions go to its own layer, so the parent never sees them, while
    the parent's later writes show through wherever the child has not shadowed the key.
    Deleting a key that only an ancestor holds raises :class:`KeyError`.

    Example:
        >>> parent = ChainMap().root()
        >>> parent["user"] = "ann"
        >>> child = ChainMap().inherit(parent)
        >>> child["user"] = "bob"
        >>> (parent["user"], child["user"])
        ('ann', 'bob')
    """

    def inherit(self, parent: MutableMapping[_K, _V], /) -> MutableMapping[_K, _V]:
        """Return a :class:`collections.ChainMap` of a new empty layer and ``parent``'s layers."""
        if isinstance(parent, collections.ChainMap):
            return layers_over([{}, *parent.maps])
        return layers_over([{}, parent])

    def root(self) -> MutableMapping[Any, Any]:
        """Return a :class:`collections.ChainMap` with one empty layer."""
        return Layers()
