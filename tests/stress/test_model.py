"""A model of the contract, checked against the real library by random programs.

A hypothesis ``RuleBasedStateMachine`` owns an event loop with four contexts attached, one
per built-in policy. Its *agents* are real asyncio tasks parked on a mailbox; the machine
tells them what to do (write, delete, pop, setdefault, clear, append to a shared list,
read, spawn a child as a task or from a callback, finish) and runs the loop until they
answer. Each command acts on the four contexts at once and returns, per context, what
happened: a value or the name of the exception.

Next to the real library runs a tiny reference model of the contract's policy table:
for each agent and context, either ``None`` (no data) or a model mapping. ``Share()``
children hold the parent's very model dict, ``Copy()`` a ``dict(...)`` of it (values are
ints and lists, so lists stay shared, as a shallow copy shares them), ``DeepCopy()`` a
``copy.deepcopy``, ``ChainMap()`` a :class:`LayersModel` with a new layer over the
parent's layers (made on the child's first write, so it reads the parent's layers until then;
a task that spawns through the factory first gets a layer of its own). The model also follows the rules on data's origin: a task with no data
gets the policy's root on first access where the context is attached, and
``TaskContextError`` where it is not (rules 4 and 6); a running task spawning before it
touched a context gets its root first, a callback does not (rules 1 and 3); after
``detach`` new tasks get no data while existing ones keep theirs (rule 7); ``attach()``
from inside a task gives it root data.

Every answer must match the model, and after every step every live agent's data must be
the model's. CI runs a bounded, derandomised profile; ``AIOCONTEXT_STRESS=full`` a large
one.
"""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Final, TypeAlias

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aiocontext import Context, ContextRegistry
from stress._support import (
    FACTORIES,
    FULL,
    LOOP_KINDS,
    POLICIES,
    new_loop,
    skip_unless_factory_works,
)

SETTINGS: Final = settings(
    max_examples=1_000 if FULL else 50,
    stateful_step_count=100 if FULL else 50,
    deadline=None,
    derandomize=not FULL,  # CI is reproducible; the full run explores
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

#: At most this many live agents: beyond it, programs would mostly spawn (hypothesis picks
#: the rules that add to a bundle often), and data would be spread too thin to interact.
MAX_AGENTS: Final = 6
KEYS: Final = ("a", "b")
LIST: Final = "list"  # the key of the one mutable value
ANY_KEY: Final = st.sampled_from([*KEYS, LIST])
VALUES: Final = st.integers(0, 9)
POLICY_NAMES: Final = st.sampled_from(list(POLICIES))

#: What one command did in one context: ("ok", result) or ("error", exception name).
Outcome: TypeAlias = tuple[str, object]
#: What the machine sends an agent: a command (``None``: finish) and where to answer.
Mail: TypeAlias = "tuple[Callable[[], Any] | None, asyncio.Future[Any]]"
#: A mapping operation, applied alike to a real context and to a model mapping.
Operation: TypeAlias = Callable[[MutableMapping[str, Any]], object]


class LayersModel(MutableMapping[str, Any]):
    """The model of a ``ChainMap()`` task's data: its own layer first, then its parent's.

    Reads search the layers in order; writes, ``del``, ``pop`` and ``clear`` act on the own
    layer only (``del`` of a key only a parent holds raises ``KeyError``).
    """

    def __init__(self, layers: list[dict[str, Any]]) -> None:
        self.layers = layers

    def __getitem__(self, key: str) -> Any:
        for layer in self.layers:
            if key in layer:
                return layer[key]
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.layers[0][key] = value

    def __delitem__(self, key: str) -> None:
        del self.layers[0][key]

    def __iter__(self) -> Iterator[str]:
        return iter({key: None for layer in self.layers for key in layer})

    def __len__(self) -> int:
        return len({key for layer in self.layers for key in layer})

    def pop(self, key: str, *default: Any) -> Any:
        """Pop from the own layer only, as the contract's ``ChainMap()`` does."""
        return self.layers[0].pop(key, *default)

    def clear(self) -> None:
        """Clear the own layer only."""
        self.layers[0].clear()


def model_root(policy: str) -> MutableMapping[str, Any]:
    """The model of ``policy.root()``."""
    return LayersModel([{}]) if policy == "ChainMap" else {}


def model_inherit(policy: str, parent: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The model of ``policy.inherit(parent)``: the policy table of the contract."""
    if policy == "Share":
        return parent
    if policy == "Copy":
        return dict(parent)
    if policy == "DeepCopy":
        return copy.deepcopy(parent)
    assert isinstance(parent, LayersModel)
    return LayersModel(parent.layers)  # the parent's layers: a new one on the first write


def outcome(operation: Operation, mapping: MutableMapping[str, Any]) -> Outcome:
    """Apply ``operation``; report its result or the name of what it raised."""
    try:
        return ("ok", operation(mapping))
    except Exception as error:
        return ("error", type(error).__name__)


# -- operations ------------------------------------------------------------------------------


class Op:
    """A mapping operation, applied alike to a real context and to a model mapping.

    ``writes``: whether it writes to the mapping (under ``ChainMap()`` a task that still
    reads its creator's layers gets a layer of its own first).
    """

    def __init__(self, text: str, operation: Operation, *, writes: bool = True) -> None:
        self._text = text
        self._operation = operation
        self.writes = writes

    def __repr__(self) -> str:
        return self._text

    def __call__(self, mapping: MutableMapping[str, Any]) -> object:
        return self._operation(mapping)


def _pop(key: str, with_default: bool) -> Op:
    if with_default:
        return Op(f"pop({key!r}, 'default')", lambda m: m.pop(key, "default"))
    return Op(f"pop({key!r})", lambda m: m.pop(key))


def _read(key: str) -> Op:
    return Op(
        f"get({key!r}), {key!r} in, [{key!r}]",
        lambda m: (m.get(key, "absent"), key in m, outcome(lambda n: n[key], m)),
        writes=False,
    )


WRITES: Final = st.builds(
    lambda key, value: Op(f"[{key!r}] = {value}", lambda m: m.__setitem__(key, value)),
    st.sampled_from(KEYS),
    VALUES,
)
NEW_LIST: Final = st.just(Op(f"[{LIST!r}] = []", lambda m: m.__setitem__(LIST, [])))
# Mutates the list in place: Share() and Copy() relatives see it, DeepCopy() ones do not.
APPENDS: Final = st.builds(
    lambda item: Op(f"[{LIST!r}].append({item})", lambda m: m[LIST].append(item), writes=False),
    VALUES,
)
OPERATIONS: Final = st.one_of(
    WRITES,  # three times: programs need data to propagate
    WRITES,
    WRITES,
    st.builds(lambda key: Op(f"del [{key!r}]", lambda m: m.__delitem__(key)), ANY_KEY),
    st.builds(_pop, ANY_KEY, st.booleans()),
    st.builds(
        lambda key, value: Op(f"setdefault({key!r}, {value})", lambda m: m.setdefault(key, value)),
        st.sampled_from(KEYS),
        VALUES,
    ),
    st.just(Op("clear()", lambda m: m.clear())),
    # A new list each time it is applied: the real one and the model's are never the same.
    # Twice, as the appends: the list is the one value that tells sharing from copying.
    NEW_LIST,
    NEW_LIST,
    APPENDS,
    APPENDS,
    st.builds(_read, ANY_KEY),
    st.just(Op("dict(), len(), sorted()", lambda m: (dict(m), len(m), sorted(m)), writes=False)),
)


class Agent:
    """A real task, parked on its mailbox, that runs the commands the machine sends it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mailbox: asyncio.Queue[Mail] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.views: dict[str, MutableMapping[str, Any]] = {}

    def __repr__(self) -> str:
        return f"<agent {self.name}>"

    async def run(self) -> None:
        """Run commands until told to finish (``None``)."""
        while True:
            command, reply = await self.mailbox.get()
            if command is None:
                reply.set_result(None)
                return
            try:
                result = command()
                if asyncio.iscoroutine(result):
                    result = await result
            except BaseException as error:  # pragma: no cover - commands report their errors
                reply.set_exception(error)
            else:
                reply.set_result(result)


class PolicyMachine(RuleBasedStateMachine):
    """Random programs on the real library and on the model; every answer must match."""

    agents = Bundle("agents")

    def __init__(self, kind: str, factory: str) -> None:
        super().__init__()
        self.loop = new_loop(kind, factory)
        registry = ContextRegistry()
        self.contexts: dict[str, Context[str, Any]] = {
            name: Context(policy, name=f"model-{name}", registry=registry)
            for name, policy in POLICIES.items()
        }
        for ctx in self.contexts.values():
            ctx.attach(self.loop)
        self.attached = dict.fromkeys(self.contexts, True)
        self.model: dict[Agent, dict[str, MutableMapping[str, Any] | None]] = {}
        # ChainMap() data of tasks made without the factory that have not written yet: they
        # read their creator's layers themselves (the model holds the creator's very list).
        self.borrowed: set[Agent] = set()
        self.names = iter(f"agent-{index}" for index in range(1_000_000))

    def teardown(self) -> None:
        tasks = [agent.task for agent in self.model if agent.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    # -- talking to agents -------------------------------------------------------------------

    def send(self, agent: Agent, command: Callable[[], Any] | None) -> Any:
        """Have ``agent`` run ``command`` in its task; run the loop until it answers."""
        reply: asyncio.Future[Any] = self.loop.create_future()
        agent.mailbox.put_nowait((command, reply))
        return self.loop.run_until_complete(reply)

    def own_layer(self, agent: Agent) -> None:
        """Under ChainMap(), ``agent`` writes: it gets a layer of its own if it has none."""
        data = self.model[agent]["ChainMap"]
        if agent in self.borrowed and isinstance(data, LayersModel):
            self.model[agent]["ChainMap"] = LayersModel([{}, *data.layers])
        self.borrowed.discard(agent)

    def expect(
        self, agent: Agent, policy: str, operation: Operation, *, writes: bool | None = None
    ) -> Outcome:
        """What the model says ``operation`` gives in ``agent``'s data for ``policy``."""
        if writes is None:
            writes = getattr(operation, "writes", True)
        if policy == "ChainMap" and writes:
            self.own_layer(agent)
        data = self.model[agent][policy]
        if data is None:
            if not self.attached[policy]:
                return ("error", "TaskContextError")
            data = self.model[agent][policy] = model_root(policy)  # rule 4
        return outcome(operation, data)

    def apply(self, agent: Agent, operation: Operation) -> None:
        """Apply ``operation`` in every context, in ``agent``'s task and in the model."""
        contexts = self.contexts

        def command() -> dict[str, Outcome]:
            return {name: outcome(operation, ctx) for name, ctx in contexts.items()}

        actual = self.send(agent, command)
        expected = {name: self.expect(agent, name, operation) for name in contexts}
        assert expected == actual

    def apply_to_view(self, agent: Agent, operation: Operation) -> None:
        """Apply ``operation`` to the live mapping ``ctx.data()`` gave ``agent`` the first
        time (cached: it must stay live across spawns and writes)."""
        contexts = self.contexts

        def on_view(name: str) -> Outcome:
            if name not in agent.views:
                try:
                    agent.views[name] = contexts[name].data()
                except Exception as error:
                    return ("error", type(error).__name__)
            return outcome(operation, agent.views[name])

        actual = self.send(agent, lambda: {name: on_view(name) for name in contexts})
        expected = {name: self.expect(agent, name, operation, writes=True) for name in contexts}
        assert expected == actual

    def new_agent(self) -> Agent:
        agent = Agent(next(self.names))
        self.model[agent] = {}
        return agent

    # -- rules: tasks ------------------------------------------------------------------------

    @initialize(target=agents)
    def first_root(self) -> Agent:
        """A root task, created outside any task."""
        return self.new_root(with_data=True)

    @precondition(lambda self: len(self.model) < MAX_AGENTS)
    @rule(target=agents, with_data=st.booleans())
    def root(self, with_data: bool) -> Agent:
        """A root task created outside any task. Without data: created while the contexts
        were detached, which are then attached again (like a main task created before
        ``attach``)."""
        return self.new_root(with_data=with_data)

    def new_root(self, *, with_data: bool) -> Agent:
        """A task created outside any task: root data where attached, none elsewhere."""
        was_attached = dict(self.attached)
        if not with_data:
            for ctx in self.contexts.values():
                ctx.detach(self.loop)
            self.attached = dict.fromkeys(self.contexts, False)
        agent = self.new_agent()
        agent.task = self.loop.create_task(agent.run())
        self.model[agent] = {
            name: model_root(name) if self.attached[name] else None for name in self.contexts
        }
        for name, ctx in self.contexts.items():
            if was_attached[name] and not self.attached[name]:
                ctx.attach(self.loop)
        self.attached = was_attached
        return agent

    @precondition(lambda self: len(self.model) < MAX_AGENTS)
    @rule(target=agents, parent=agents, from_callback=st.booleans())
    def spawn(self, parent: Agent, from_callback: bool) -> Agent:
        """``parent`` creates a child task: from its own task, or from a callback."""
        child = self.new_agent()

        async def in_task() -> None:
            child.task = asyncio.create_task(child.run())

        async def in_callback() -> None:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()

            def callback() -> None:
                child.task = loop.create_task(child.run())
                done.set_result(None)

            loop.call_soon(callback)
            await done

        self.send(parent, in_callback if from_callback else in_task)
        if not from_callback and self.attached["ChainMap"]:
            self.own_layer(parent)  # a task spawning through the factory gets a layer first
        for name in self.contexts:
            data = self.model[parent][name]
            if not self.attached[name]:
                self.model[child][name] = None  # rule 7
            elif data is not None:
                self.model[child][name] = model_inherit(name, data)  # rule 1
            elif not from_callback:  # rule 3: the running parent gets its root first
                data = self.model[parent][name] = model_root(name)
                self.model[child][name] = model_inherit(name, data)
            else:  # a callback is not a running task: the child gets a root of its own
                self.model[child][name] = model_root(name)
                continue
            if name == "ChainMap":
                self.borrowed.add(child)  # it reads the parent's layers until it writes
        return child

    @precondition(lambda self: len(self.model) < MAX_AGENTS)
    @rule(target=agents, parent=agents, eager=st.booleans())
    def spawn_without_factory(self, parent: Agent, eager: bool) -> Agent:
        """``parent`` creates a child with ``asyncio.Task(...)`` (eagerly on 3.12+), as
        aiohttp does: no task factory runs, the child runs in a copy of its creator's
        context. It gets what the policy gives by contextvars alone: the creator's mapping
        under Share(), a shallow copy under Copy() and DeepCopy(), the creator's layers
        under ChainMap() (a layer of its own on its first write), and nothing where the
        creator has nothing, attached or not."""
        child = self.new_agent()

        async def in_task() -> None:
            loop = asyncio.get_running_loop()
            if eager and sys.version_info >= (3, 12):
                child.task = asyncio.Task(child.run(), loop=loop, eager_start=True)
            else:
                child.task = asyncio.Task(child.run(), loop=loop)

        self.send(parent, in_task)
        for name in self.contexts:
            data = self.model[parent][name]
            if data is None:
                self.model[child][name] = None
            elif name == "Share":
                self.model[child][name] = data
            elif name == "ChainMap":
                assert isinstance(data, LayersModel)
                self.model[child][name] = LayersModel(data.layers)
            else:
                self.model[child][name] = dict(data)
        if self.model[child]["ChainMap"] is not None:
            self.borrowed.add(child)
        return child

    @rule(agent=consumes(agents))
    def finish(self, agent: Agent) -> None:
        """The agent's task returns; its data lives on only where others share it."""
        self.send(agent, None)
        assert agent.task is not None
        self.loop.run_until_complete(agent.task)
        del self.model[agent]
        self.borrowed.discard(agent)

    @rule(agent=agents, operation=OPERATIONS, through_view=st.booleans())
    def operate(self, agent: Agent, operation: Op, through_view: bool) -> None:
        """The agent reads or writes its data (``ctx[key]``, ``del``, ``pop``, ...), on the
        context or through the mapping ``ctx.data()`` first gave it."""
        if through_view:
            self.apply_to_view(agent, operation)
        else:
            self.apply(agent, operation)

    if sys.version_info >= (3, 12):

        @rule(agent=agents)
        def peek(self, agent: Agent) -> None:
            """Read an agent's data from outside it: ``ctx.data(task)`` (3.12+)."""
            task = agent.task
            assert task is not None
            actual = {
                name: outcome(lambda _: dict(ctx.data(task)), {})  # noqa: B023 - called at once
                for name, ctx in self.contexts.items()
            }
            expected = {name: self.expect(agent, name, dict, writes=True) for name in self.contexts}
            assert expected == actual

    @rule(policy=POLICY_NAMES, attach=st.booleans(), agent=st.none() | agents)
    def attach_or_detach(self, policy: str, attach: bool, agent: Agent | None) -> None:
        """``ctx.attach(loop)``/``ctx.detach(loop)`` from outside the loop, or
        ``ctx.attach()``/``ctx.detach()`` in an agent. Attaching in an agent gives it root
        data if it had none; detaching never takes data away."""
        ctx = self.contexts[policy]
        if agent is None:
            if attach:
                ctx.attach(self.loop)
            else:
                ctx.detach(self.loop)
        else:
            self.send(agent, ctx.attach if attach else ctx.detach)
            if attach and self.model[agent][policy] is None:
                self.model[agent][policy] = model_root(policy)
        self.attached[policy] = attach

    # -- after every step ----------------------------------------------------------------------

    @invariant()
    def every_agent_has_the_model_data(self) -> None:
        """Every live agent's data is the model's, in every context where it has data."""
        contexts = self.contexts
        replies: list[asyncio.Future[Any]] = []
        expected: list[tuple[Agent, dict[str, dict[str, Any]]]] = []
        for agent, models in self.model.items():
            with_data = {name: dict(data) for name, data in models.items() if data is not None}

            def command(names: list[str] = list(with_data)) -> dict[str, dict[str, Any]]:  # noqa: B006 - bound now, read-only
                return {name: dict(contexts[name]) for name in names}

            reply: asyncio.Future[Any] = self.loop.create_future()
            agent.mailbox.put_nowait((command, reply))
            replies.append(reply)
            expected.append((agent, with_data))
        if not replies:
            return
        actual = self.loop.run_until_complete(asyncio.gather(*replies))
        assert expected == list(zip([agent for agent, _ in expected], actual, strict=False))


class TestModel:
    """The library behaves as the model of the contract's policy table says."""

    @pytest.mark.parametrize("factory", FACTORIES)
    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_random_programs_match_the_model(self, kind: str, factory: str) -> None:
        """Random programs of spawns, writes, deletes, reads, finishes, detaches and
        re-attaches, under the four policies at once, give exactly the model's answers."""
        skip_unless_factory_works(kind, factory)

        class Machine(PolicyMachine):
            def __init__(self) -> None:
                super().__init__(kind, factory)

        run_state_machine_as_test(Machine, settings=SETTINGS)
