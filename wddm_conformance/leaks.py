"""Driver state that outlives its owner: Driver Verifier's pool tracking, for Python drivers
(and, from their runtime's pool, for WDK-style native drivers: :func:`find_pool_leak`).

A Python driver's resources are the objects it keeps. The harness counts them in a
*census*: every object reachable from the driver's *roots* (the driver object, the
classes of its method resolution order and the globals of the driver's modules), with
its ``sys.getsizeof`` bytes, and every live instance of a class the driver's modules
define (``gc.get_objects`` after a collection, so whoever holds it). The driver's
modules are those that define the classes of its MRO and the other loaded modules of
their packages, less the harness (``wddm_conformance``, except the reference driver's
package, which a driver that subclasses it inherits code from), the standard library,
and the modules of its COMMAND_ENCODER and GPU_MODEL (user mode and hardware, not the
kernel-mode driver). The walk does not enter classes, modules, functions (a closure's
cells excepted), code, frames, or the harness's own objects: those are counted, not
entered.

:func:`find_leak` runs a *cycle* (a failed CreateAllocation batch, a create-destroy
cycle) :data:`WARMUP` times, takes a census, runs it :data:`WINDOW` more times, takes
another, and once more. State that grows in both windows (by :data:`MIN_OBJECTS`
objects or instances, or :data:`MIN_BYTES` bytes, each per window) grows with the
number of cycles: a leak. A cost paid once, a cache or pool bounded in size, a table
that stops growing within ``WARMUP + WINDOW`` cycles grow in one window at most and
pass. Nothing here reads a clock or depends on what else the process holds, so the
verdict is the driver's alone. Only after a leak is found do :data:`ATTRIBUTION_CYCLES`
more cycles run under :mod:`tracemalloc` (:data:`NFRAMES` frames), to say which of the
driver's containers keeps the new objects and where one was allocated (the innermost
frame in the driver's files).
"""

from __future__ import annotations

import gc
import itertools
import sys
import tracemalloc
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import (
    BuiltinFunctionType,
    CodeType,
    FrameType,
    FunctionType,
    GetSetDescriptorType,
    MemberDescriptorType,
    MethodDescriptorType,
    ModuleType,
    WrapperDescriptorType,
)
from typing import Any, Final, Literal

#: Cycles run before the first census: lazily built tables and pools fill up here.
WARMUP: Final = 16
#: Cycles between two censuses. A leak of one object per cycle grows WINDOW objects per window.
WINDOW: Final = 64
#: Growth per window that counts: half an object (or live instance) per cycle ...
MIN_OBJECTS: Final = WINDOW // 2
#: ... or four bytes per cycle (a list that keeps one shared small int per cycle).
MIN_BYTES: Final = 4 * WINDOW
#: Frames tracemalloc keeps per allocation while a leak is attributed (each one costs time
#: on every allocation of the process), and the cycles it watches.
NFRAMES: Final = 4
ATTRIBUTION_CYCLES: Final = 8

_HARNESS = "wddm_conformance"
_REFERENCE = "wddm_conformance.reference"
#: Objects the walk counts but does not enter: code and namespaces, shared by everyone.
_OPAQUE = (
    type,
    ModuleType,
    CodeType,
    FrameType,
    BuiltinFunctionType,
    MethodDescriptorType,
    WrapperDescriptorType,
    GetSetDescriptorType,
    MemberDescriptorType,
)


def _is_harness(module: str) -> bool:
    top = module.partition(".")[0]
    if module == _REFERENCE or module.startswith(_REFERENCE + "."):
        return False
    return top == _HARNESS


def _is_stdlib(module: str) -> bool:
    return module.partition(".")[0] in sys.stdlib_module_names


def tracks_pool(driver_cls: type) -> bool:
    """Whether ``driver_cls`` is a WDK-style native driver, whose runtime tracks every block
    of pool it holds (then :func:`find_pool_leak` judges it instead of the census)."""
    library = getattr(driver_cls, "LIBRARY", None)
    return getattr(library, "registered", None) is not None


def unsupported(driver_cls: type) -> str:
    """Why no leak check can see ``driver_cls``'s resources ("" when one can): a native
    driver's state is C memory, which only a WDK-style driver's runtime accounts for."""
    if tracks_pool(driver_cls):
        return ""
    if any(c.__module__.startswith(f"{_HARNESS}.native") for c in driver_cls.__mro__):
        return (
            "native driver: its state is C memory, which a census of Python objects cannot "
            "see (a WDK-style driver's pool is counted)"
        )
    return ""


def driver_modules(driver_cls: type, companions: Iterable[type] = ()) -> tuple[ModuleType, ...]:
    """The loaded modules that are the driver's: those defining ``driver_cls``'s MRO and the
    other loaded modules of their packages, less the harness, the standard library and
    the modules of ``companions`` (the encoder and GPU model)."""
    excluded = {c.__module__ for c in companions}
    own = [c.__module__ for c in driver_cls.__mro__]
    own = [m for m in dict.fromkeys(own) if not _is_harness(m) and not _is_stdlib(m)]
    packages = {sys.modules[m].__package__ or m for m in own if m in sys.modules}
    names = set(own)
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in packages):
            names.add(name)
    return tuple(
        sys.modules[n]
        for n in sorted(names)
        if n in sys.modules
        and n not in excluded
        and not _is_harness(n)
        and isinstance(sys.modules[n], ModuleType)
    )


def _file(module: ModuleType) -> str:
    name = getattr(module, "__file__", None)
    return str(Path(name).resolve()) if isinstance(name, str) else ""


@dataclass(frozen=True)
class Census:
    """What the driver keeps at one moment: ``objects`` reachable from its roots, their
    ``bytes`` (``sys.getsizeof``), and live ``instances`` of the driver's classes."""

    objects: int
    bytes: int
    instances: int

    def __sub__(self, other: Census) -> Census:
        return Census(
            self.objects - other.objects,
            self.bytes - other.bytes,
            self.instances - other.instances,
        )

    def grew(self) -> bool:
        """Whether this difference is the growth of a leak over one window."""
        return (
            self.objects >= MIN_OBJECTS or self.instances >= MIN_OBJECTS or self.bytes >= MIN_BYTES
        )


@dataclass(frozen=True)
class Leak:
    """What a driver keeps that grew in both windows of ``cycles`` cycles each: a Python
    driver's state (:func:`find_leak`) or a WDK-style native driver's pool
    (:func:`find_pool_leak`)."""

    cycles: int
    first: Census
    second: Census
    #: Where one of the new objects was allocated and where the driver keeps it; for pool,
    #: which blocks the attribution cycles left (tag, size, allocating DDI).
    where: str
    #: What grew: ``"state"``, the objects, bytes and class instances a Python driver keeps,
    #: or ``"pool"``, a native driver's pool blocks and bytes (``instances`` is 0).
    kept: Literal["state", "pool"] = "state"

    def describe(self, cycles: str) -> str:
        """For a failure message: what grew over how many of ``cycles``, and where."""
        a, b = self.first, self.second
        per = (a.objects + b.objects) / (2 * self.cycles)
        unit = "objects" if self.kept == "state" else "blocks"
        grew = f"{a.objects:+d}/{b.objects:+d} {unit} ({per:.1f} per cycle)"
        size = f"{a.bytes:+d}/{b.bytes:+d} bytes"
        if self.kept == "state":
            grew += (
                f", {size} and {a.instances:+d}/{b.instances:+d} instances of the driver's classes"
            )
        else:
            grew += f" and {size}"
        return (
            f"keeps {self.kept} that grows with the number of {cycles}: after {WARMUP} to warm "
            f"up, each {self.cycles} more grew it by {grew}; {self.where}"
        )


class Tracker:
    """Counts what a driver object keeps (:class:`Census`)."""

    def __init__(self, driver: object, companions: Iterable[type] = ()) -> None:
        cls = type(driver)
        self.driver = driver
        self.modules = driver_modules(cls, companions)
        self.module_names = frozenset(m.__name__ for m in self.modules)
        self.files = frozenset(f for f in map(_file, self.modules) if f)
        self._companions = tuple(companions)

    def display(self, filename: str) -> str:
        """``filename`` as its import path spells it (``tests/mutants.py``) when it is one of
        the driver's files, else as given."""
        resolved = str(Path(filename).resolve())
        for module in self.modules:
            if _file(module) == resolved:
                depth = module.__name__.count(".") + (Path(resolved).stem == "__init__")
                return "/".join(Path(resolved).parts[-depth - 1 :])
        return filename

    def roots(self) -> Iterator[tuple[str, object]]:
        """(label, object) of every root: the driver, its classes' attributes, its modules' globals."""
        name = type(self.driver).__name__
        yield f"{name}()", self.driver
        seen_types: set[int] = set()
        types = [c for c in type(self.driver).__mro__ if not _is_harness(c.__module__)]
        for module in self.modules:
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__ == module.__name__:
                    types.append(value)
        for t in types:
            if id(t) in seen_types or _is_stdlib(t.__module__):
                continue
            seen_types.add(id(t))
            for attr, value in list(vars(t).items()):
                if not attr.startswith("__"):
                    yield f"{t.__qualname__}.{attr}", value
        for module in self.modules:
            for attr, value in list(vars(module).items()):
                if not attr.startswith("__"):
                    yield f"{module.__name__}.{attr}", value

    def _enterable(self, obj: object) -> bool:
        if isinstance(obj, _OPAQUE):
            return False
        module = getattr(type(obj), "__module__", "") or ""
        return not _is_harness(module)

    @staticmethod
    def _children(obj: object) -> list[object]:
        if isinstance(obj, FunctionType):  # its closure's cells, not its globals or code
            return [c.cell_contents for c in obj.__closure__ or () if _cell_full(c)]
        return gc.get_referents(obj)

    def walk(self, keep: bool = False) -> tuple[dict[int, int], dict[int, tuple[object, int, str]]]:
        """id -> size of every object reachable from the roots; with ``keep``, also
        id -> (object, parent id or 0, root label) to find the way back from an object."""
        sizes: dict[int, int] = {}
        kept: dict[int, tuple[object, int, str]] = {}
        queue: deque[tuple[object, int, str]] = deque()
        for label, root in self.roots():
            queue.append((root, 0, label))
            while queue:  # breadth first: the way back from an object is a shortest one
                obj, parent, label = queue.popleft()
                key = id(obj)
                if key in sizes:
                    continue
                sizes[key] = sys.getsizeof(obj, 0)
                if keep:
                    kept[key] = (obj, parent, label)
                if self._enterable(obj):
                    queue.extend((child, key, label) for child in self._children(obj))
        return sizes, kept

    def instances(self) -> list[object]:
        """Live objects whose class a driver module defines (the companions' excepted)."""
        names = self.module_names
        companions = self._companions
        return [
            o
            for o in gc.get_objects()
            if type(o).__module__ in names and not isinstance(o, companions)
        ]

    def census(self) -> Census:
        """The driver's state now, after a full collection (so garbage cycles are not counted)."""
        gc.collect()
        sizes, _ = self.walk()
        return Census(len(sizes), sum(sizes.values()), len(self.instances()))


def _cell_full(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def find_leak(
    driver: object,
    cycle: Callable[[], None],
    *,
    companions: Iterable[type] = (),
    warmup: int = WARMUP,
    window: int = WINDOW,
) -> Leak | None:
    """Run ``cycle`` ``warmup`` times, then two windows of ``window`` times; a :class:`Leak`
    when ``driver``'s state grew in both windows, else None. ``cycle`` raises to stop."""
    tracker = Tracker(driver, companions)
    for _ in range(warmup):
        cycle()
    start = tracker.census()
    for _ in range(window):
        cycle()
    middle = tracker.census()
    for _ in range(window):
        cycle()
    end = tracker.census()
    first, second = middle - start, end - middle
    if not (first.grew() and second.grew()):
        return None
    return Leak(window, first, second, _attribute(tracker, cycle, ATTRIBUTION_CYCLES))


def _attribute(tracker: Tracker, cycle: Callable[[], None], cycles: int) -> str:
    """Run ``cycles`` more cycles under tracemalloc: which container of the driver's keeps
    the new objects, which they are, and where one was allocated (innermost frame in the
    driver's files)."""
    gc.collect()
    before, _ = tracker.walk()
    before_instances = {id(o) for o in tracker.instances()}
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(NFRAMES)
    try:
        for _ in range(cycles):
            cycle()
        gc.collect()
        sizes, kept = tracker.walk(keep=True)
        # the new objects an old object holds: where the driver keeps what it should have dropped
        held: dict[int, list[object]] = {}
        for key in sizes:
            obj, parent, _ = kept[key]
            if key not in before and parent in before:
                held.setdefault(parent, []).append(obj)
        stray = [
            o for o in tracker.instances() if id(o) not in before_instances and id(o) not in sizes
        ]
        # a leak shows in every cycle or two; fewer new objects are noise (a counter's new value)
        enough = max(1, cycles // 2)
        parent, new = max(held.items(), key=lambda item: len(item[1]), default=(0, []))
        if len(new) >= enough:
            where = f"kept in {_path(parent, kept)} ({type(kept[parent][0]).__name__})"
        elif len(stray) >= enough:
            new, where = stray, "not reachable from the driver's roots (held elsewhere)"
        else:
            return _grown_container(cycles, before, sizes, kept)
        kinds = Counter(type(o).__name__ for o in new)
        what = ", ".join(f"{n} {t}" for t, n in kinds.most_common(3))
        rank = {t: i for i, (t, _) in enumerate(kinds.most_common())}
        traced = sorted(
            (
                (rank[type(o).__name__], t, type(o).__name__)
                for o in new
                if (t := _traced_in(tracker, o))
            ),
            key=lambda item: item[0],
        )
        sample = f"; one {traced[0][2]} of them was allocated at {traced[0][1]}" if traced else ""
        return f"{cycles} more left {what} new, {where}{sample}"
    finally:
        if started:
            tracemalloc.stop()


def _traced_in(tracker: Tracker, obj: object) -> str:
    """``file:line`` of the innermost frame in the driver's files that allocated ``obj``
    (else the innermost frame), or "" when tracemalloc has no trace of it."""
    trace = tracemalloc.get_object_traceback(obj)
    if trace is None:
        return ""
    frames = list(reversed(trace))  # a Traceback runs from the oldest frame
    mine = [f for f in frames if str(Path(f.filename).resolve()) in tracker.files]
    frame = (mine or frames)[0]
    return f"{tracker.display(frame.filename)}:{frame.lineno}"


def _grown_container(
    cycles: int,
    before: dict[int, int],
    after: dict[int, int],
    kept: dict[int, tuple[object, int, str]],
) -> str:
    """No new objects (a list of shared values, say): the object whose size grew most."""
    grown = [(after[k] - before[k], k) for k in after if k in before and after[k] > before[k]]
    if not grown:
        return f"{cycles} more grew nothing the census can name"
    growth, key = max(grown)
    obj = kept[key][0]
    return f"{cycles} more grew the {type(obj).__name__} at {_path(key, kept)} by {growth} bytes"


def _path(key: int, kept: dict[int, tuple[object, int, str]]) -> str:
    """The way from a root to object ``key``: ``Driver().pending[3]``."""
    chain: list[object] = []
    root = ""
    while key:
        obj, key, root = kept[key]
        chain.append(obj)
    chain.reverse()
    steps: list[str] = []
    for parent, child in itertools.pairwise(chain):
        if getattr(parent, "__dict__", None) is child:
            steps.append(".")  # an instance's attributes: the next step names one
        elif steps and steps[-1] == "." and isinstance(parent, dict):
            steps[-1] = "." + next((str(k) for k, v in parent.items() if v is child), "?")
        else:
            steps.append(_label(parent, child))
    return root + "".join(steps)


def _label(parent: object, child: object) -> str:
    if isinstance(parent, dict):
        for k, v in parent.items():
            if v is child:
                return f"[{_short(k)}]"
            if k is child:
                return f" (key {_short(k)})"
    if isinstance(parent, list | tuple):
        for i, v in enumerate(parent):
            if v is child:
                return f"[{i}]"
    if isinstance(parent, set | frozenset):
        return f" (an element of a {type(parent).__name__})"
    attrs = getattr(parent, "__dict__", None)
    if isinstance(attrs, dict):
        for k, v in attrs.items():
            if v is child:
                return f".{k}"
    for t in type(parent).__mro__:
        for slot in getattr(t, "__slots__", ()):
            if getattr(parent, slot, None) is child:
                return f".{slot}"
    return f" -> {type(child).__name__}"


def _short(value: object) -> str:
    text = f"0x{value:X}" if isinstance(value, int) and not isinstance(value, bool) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- native pool


def _pool_census(driver: Any) -> tuple[Census, dict[int, Any]]:
    blocks = {b.address: b for b in driver.pool_blocks()}
    return Census(len(blocks), sum(b.size for b in blocks.values()), 0), blocks


def find_pool_leak(
    driver: Any,
    cycle: Callable[[], None],
    *,
    warmup: int = WARMUP,
    window: int = WINDOW,
) -> Leak | None:
    """:func:`find_leak` for a WDK-style native driver: the census is the pool its runtime
    tracks for the adapter (``driver.pool_blocks()``: blocks and bytes), with the same
    thresholds; the attribution names the tag, size and allocating DDI of the new blocks."""
    for _ in range(warmup):
        cycle()
    start, _ = _pool_census(driver)
    for _ in range(window):
        cycle()
    middle, _ = _pool_census(driver)
    for _ in range(window):
        cycle()
    end, before = _pool_census(driver)
    first, second = middle - start, end - middle
    if not (first.grew() and second.grew()):
        return None
    for _ in range(ATTRIBUTION_CYCLES):
        cycle()
    _, after = _pool_census(driver)
    new = [b for address, b in after.items() if address not in before]
    kinds = Counter((b.tag_text, b.size, driver.pool_block_ddi(b)) for b in new)
    shown = ", ".join(
        f"{n} x tag '{tag}' {size} bytes allocated in {ddi}"
        for (tag, size, ddi), n in kinds.most_common(3)
    )
    where = f"{ATTRIBUTION_CYCLES} more left {len(new)} new block(s): {shown or 'none'}"
    return Leak(window, first, second, where, kept="pool")
