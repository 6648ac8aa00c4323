"""Propagation policies: what a child task's data is, given its parent's.

A policy is a frozen value object with two methods. :meth:`PropagationPolicy.inherit` turns
the creator's mapping into the new task's mapping when a task is spawned;
:meth:`PropagationPolicy.root` makes the mapping of a task that has nothing to inherit from.
"""

from __future__ import annotations

import abc
import collections
import copy
from collections.abc import MutableMapping
from typing import Any, TypeVar

import attrs

from ._layers import Layers, layer

__all__ = ["ChainMap", "Copy", "DeepCopy", "PropagationPolicy", "Share"]

_K = TypeVar("_K")
_V = TypeVar("_V")


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
        if isinstance(parent, Layers):
            return layer({}, below=parent)  # shared, not copied
        if isinstance(parent, collections.ChainMap):
            return Layers({}, *parent.maps)
        return Layers({}, parent)

    def root(self) -> MutableMapping[Any, Any]:
        """Return a :class:`collections.ChainMap` with one empty layer."""
        return Layers()
