"""Tests for ``Layers`` (``_layers``), the data of a ``ChainMap()`` context: a
``collections.ChainMap`` kept as a chain of layers, each linked to the one below."""

from __future__ import annotations

import collections
import copy
import pickle
import sys
import threading

import pytest

from aiocontext import ChainMap
from aiocontext._layers import Layers, layer


class TestLayersChain:
    def test_maps_lists_the_layers_top_first(self) -> None:
        """``maps`` is a list of the layers themselves, top first, as ChainMap's is."""
        top, middle, bottom = {"a": 1}, {"b": 2}, {"a": 3, "c": 4}
        layers: Layers[str, int] = Layers(top, middle, bottom)
        assert [True, True, True] == [
            mine is given for mine, given in zip(layers.maps, (top, middle, bottom), strict=True)
        ]
        assert ({"a": 1, "b": 2, "c": 4}, 3) == (dict(layers), len(layers))
        assert isinstance(layers, collections.ChainMap)

    def test_no_maps_is_one_empty_layer(self) -> None:
        """``Layers()`` holds one new empty layer, as ``collections.ChainMap()`` does."""
        first: Layers[str, int] = Layers()
        second: Layers[str, int] = Layers()
        assert ([{}], False) == (first.maps, first.top is second.top)

    def test_assigning_maps_rebuilds_the_chain(self) -> None:
        """Assigning ``maps`` replaces the layers; an empty list leaves one empty layer."""
        layers: Layers[str, int] = Layers({"a": 1})
        layers.maps = [{"b": 2}, {"a": 3}]
        assert ([{"b": 2}, {"a": 3}], 3) == (layers.maps, layers["a"])
        layers.maps = []
        assert [{}] == layers.maps

    def test_a_new_layer_shares_the_chain_below(self) -> None:
        """A layer pushed over layers links to them: nothing below is copied."""
        parent: Layers[str, int] = Layers({"a": 1}, {"b": 2})
        child = layer({"c": 3}, below=parent)
        grandchild = ChainMap().inherit(child)
        assert isinstance(grandchild, Layers)
        assert (True, True) == (child.below is parent, grandchild.below is child)
        assert {"a": 1, "b": 2, "c": 3} == dict(grandchild)

    def test_inherit_of_a_plain_chainmap_layers_over_its_maps(self) -> None:
        """``ChainMap().inherit()`` of a ``collections.ChainMap`` that is not ``Layers``
        puts a new layer over its maps themselves."""
        first, second = {"a": 1}, {"b": 2}
        child = ChainMap().inherit(collections.ChainMap(first, second))
        assert isinstance(child, Layers)
        assert ([{}, first, second], True, True) == (
            child.maps,
            child.maps[1] is first,
            child.maps[2] is second,
        )

    def test_new_child_copy_and_parents_work_as_for_a_chainmap(self) -> None:
        """ChainMap's methods that build new ChainMaps from ``maps`` work on layers."""
        layers: Layers[str, int] = Layers({"a": 1}, {"b": 2})
        child = layers.new_child({"a": 0})
        assert ([{"a": 0}, {"a": 1}, {"b": 2}], [{"b": 2}]) == (child.maps, layers.parents.maps)
        copied = layers.copy()
        copied["a"] = 5
        assert (1, 5) == (layers["a"], copied["a"])

    def test_pickle_and_deepcopy_keep_the_layers(self) -> None:
        """Layers pickle and deep-copy as their list of layers, also for a chain deeper
        than the recursion limit."""
        deep: Layers[str, int] = Layers({"bottom": 0})
        for n in range(sys.getrecursionlimit() + 100):
            deep = layer({f"k{n}": n} if n % 500 == 0 else {}, below=deep)
        copies: list[Layers[str, int]] = [pickle.loads(pickle.dumps(deep)), copy.deepcopy(deep)]
        for copied in copies:
            assert isinstance(copied, Layers)
            assert (deep.maps, 0, False) == (
                copied.maps,
                copied["bottom"],
                copied.top is deep.top,
            )


class TestLayersWrites:
    def test_writes_and_deletes_go_to_the_top_layer(self) -> None:
        """``[k] = v``, ``del``, ``pop``, ``popitem`` and ``clear`` change the top layer
        only; deleting a key only a lower layer holds raises ``KeyError``."""
        bottom = {"a": 1, "b": 2}
        layers: Layers[str, int] = Layers({}, bottom)
        layers["a"] = 10
        layers["c"] = 3
        del layers["c"]
        with pytest.raises(KeyError, match="'b'"):
            del layers["b"]
        assert (10, {"a": 10}, {"a": 1, "b": 2}) == (layers["a"], layers.top, bottom)
        popped = layers.pop("a")
        layers["x"] = 0
        assert (10, ("x", 0), 1) == (popped, layers.popitem(), layers["a"])
        layers["y"] = 1
        layers.clear()
        assert ({}, {"a": 1, "b": 2}) == (layers.top, dict(layers))


class TestLayersLookups:
    def test_lookups_walk_the_chain_top_first(self) -> None:
        """``[]``, ``get`` and ``in`` find the topmost value; a key in no layer is a
        ``KeyError``, the default, and ``False``."""
        layers: Layers[str, int] = Layers({"a": 1}, {}, {"a": 2, "b": 3})
        assert (1, 3, 3, None, 0) == (
            layers["a"],
            layers["b"],
            layers.get("b"),
            layers.get("z"),
            layers.get("z", 0),
        )
        assert (True, True, False) == ("a" in layers, "b" in layers, "z" in layers)
        with pytest.raises(KeyError):
            layers["z"]


class TestLayersConcurrentLookups:
    def test_a_concurrent_delete_is_a_miss_not_a_false_key_error(self) -> None:
        """Each layer is read once: a key deleted from a lower layer by another thread while
        a read runs is either found or missed, never a ``KeyError`` for a key the read saw
        (defect 11)."""
        top: dict[str, int] = {}
        bottom: dict[str, int] = {"k": 1}
        layers: Layers[str, int] = Layers(top, bottom)
        stop = threading.Event()

        def toggle() -> None:
            while not stop.is_set():
                bottom.pop("k", None)
                bottom["k"] = 1

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible
        thread = threading.Thread(target=toggle)
        thread.start()
        results: set[object] = set()
        try:
            for _ in range(20_000):
                results.add(layers.get("k", None))
                try:
                    results.add(layers["k"])
                except KeyError:
                    results.add("miss")
        finally:
            stop.set()
            thread.join()
            sys.setswitchinterval(interval)
        assert results <= {1, None, "miss"}
