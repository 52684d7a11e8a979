"""Fuzz target for the driver's life: kernel-level actions in any order, a model as oracle.

An input is a list of actions through the simulated kernel -- create and destroy
devices and allocations, render a program, evict (UNMAP for aperture allocations),
page in (MAP), relocate, destroy a device while its allocations live on -- starting
from the rig's one device. A shadow model says what every live allocation holds; after
every action each one must hold exactly that (REN-TRANSLATE, PGB-TRANSFER, PGB-MAP,
ALC-ADAPTER), and the kernel judges each DDI call on the way. What the input created is
destroyed at its end, so the next input starts where this one did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..attribution import run_program_checked
from ..driver import AllocationRequest
from ..kernel import Allocation, Context, Device, Kernel, State
from ..oracles import Shadow
from ..program import Op
from .base import Rig, RigTarget, describe_program, pattern, read_op, valid_op, write_op
from .data import Reader, Writer

ACTIONS = (
    "create-device",
    "destroy-device",
    "create-allocation",
    "destroy-allocation",
    "render",
    "evict",
    "page-in",
    "relocate",
)
KINDS: tuple[tuple[str, AllocationRequest], ...] = (
    ("memory", AllocationRequest(8192, aperture=False)),
    ("any", AllocationRequest(4096)),
    ("aperture", AllocationRequest(8192, aperture_only=True)),
    ("swizzled", AllocationRequest(4096, cpu_visible=True, swizzled=True)),
)
MAX_ACTIONS = 12
MAX_DEVICES = 3
MAX_LIVE = 6
OP_SIZES = (0, 8192, 8192)  # what read_op clamps against; the real sizes are checked afterwards


@dataclass(frozen=True)
class Action:
    kind: int
    pick: int = 0  # which device / allocation / kind, modulo what exists
    other: int = 0  # the second allocation of a render
    program: tuple[Op, ...] = ()


@dataclass(frozen=True)
class LifecycleInput:
    actions: tuple[Action, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> LifecycleInput:
        r = Reader(data)
        actions = []
        for _ in range(1 + r.u8() % MAX_ACTIONS):
            kind = r.u8() % len(ACTIONS)
            pick = r.u8()
            if ACTIONS[kind] == "render":
                other = r.u8()
                program = tuple(read_op(r, OP_SIZES) for _ in range(r.u8() % 9))
                actions.append(Action(kind, pick, other, program))
            else:
                actions.append(Action(kind, pick))
        return cls(tuple(actions))

    def encode(self) -> bytes:
        w = Writer().u8(len(self.actions) - 1)
        for a in self.actions:
            w.u8(a.kind).u8(a.pick)
            if ACTIONS[a.kind] == "render":
                w.u8(a.other).u8(len(a.program))
                for op in a.program:
                    write_op(w, op, OP_SIZES)
        return w.bytes()


class _Life:
    """One input's run: the devices it made, and the shadow model of the allocations it made."""

    def __init__(self, rig: Rig, lean: bool = False) -> None:
        self.k: Kernel = rig.kernel
        self.lean = lean
        self.base = rig.device
        self.devices: list[Device] = [rig.device]
        self.contexts: dict[int, Context] = {id(rig.device): rig.context}
        self.shadow = Shadow(self.k)

    @property
    def live(self) -> list[Allocation]:
        """The allocations the input made and has not destroyed, oldest first."""
        return list(self.shadow)

    def device(self, pick: int) -> Device:
        return self.devices[pick % len(self.devices)]

    def context(self, device: Device) -> Context:
        if id(device) not in self.contexts:
            self.contexts[id(device)] = self.k.create_context(device)
        return self.contexts[id(device)]

    def act(self, action: Action) -> None:
        name = ACTIONS[action.kind]
        k = self.k
        if name == "create-device":
            if len(self.devices) < MAX_DEVICES:
                self.devices.append(k.create_device())
        elif name == "destroy-device":
            extra = self.devices[1:]
            if extra:
                device = extra[action.pick % len(extra)]
                k.destroy_device(device)  # its allocations belong to the adapter and live on
                self.devices.remove(device)
                self.contexts.pop(id(device), None)
        elif name == "create-allocation":
            if len(self.live) < MAX_LIVE:
                request = KINDS[action.pick % len(KINDS)][1]
                (a,) = k.create_allocations(self.device(action.pick >> 2), [request])
                self.shadow.cpu_write(a, pattern(a.id * 31, a.size))
        elif not self.shadow:
            return
        elif name == "destroy-allocation":
            live = self.live
            a = live[action.pick % len(live)]
            self.shadow.forget(a)
            k.destroy_allocation(a)
        elif name == "render":
            self.render(action)
        else:
            live = self.live
            a = live[action.pick % len(live)]
            if name == "evict" and a.state == State.RESIDENT:
                k.evict(a)
            elif name == "page-in":
                k.make_resident(a)
            elif name == "relocate" and a.state == State.RESIDENT:
                k.relocate(a)
        self.check(name)

    def render(self, action: Action) -> None:
        live = self.live
        a, b = live[action.pick % len(live)], live[action.other % len(live)]
        alist: list[Allocation | None] = [None, a, b]
        sizes = (0, a.size, b.size)
        program = [op for op in action.program if valid_op(op, sizes)]
        ctx = self.context(self.device(action.other >> 3))
        run_program_checked(self.k, ctx, alist, program, "render in the life cycle", lean=self.lean)
        self.shadow.apply(alist, program)

    def check(self, after: str) -> None:
        rule = "REN-TRANSLATE" if after == "render" else "PGB-TRANSFER"
        self.shadow.expect_held(rule, "driver life cycle", f"after {after}, ", linear=True)

    def close(self) -> None:
        for a in self.live:
            self.k.destroy_allocation(a)
        for device in self.devices[1:]:
            self.k.destroy_device(device)


class LifecycleTarget(RigTarget):
    """Kernel-level actions in any order against a shadow model."""

    name: ClassVar[str] = "lifecycle"
    summary: ClassVar[str] = "life cycle: create, render, evict, relocate, map/unmap, destroy"

    def decode(self, data: bytes) -> LifecycleInput:
        return LifecycleInput.decode(data)

    def _run(self, s: LifecycleInput) -> None:
        rig = self.rig
        rig.use_default()
        life = _Life(rig, self.lean)
        for action in s.actions:
            life.act(action)
        life.close()

    def describe(self, data: bytes) -> str:
        s = self.decode(data)
        lines = ["lifecycle input (device 0 and its context exist at the start):"]
        for i, a in enumerate(s.actions, 1):
            name = ACTIONS[a.kind]
            if name == "create-allocation":
                lines.append(
                    f"  {i}. create-allocation {KINDS[a.pick % len(KINDS)][0]} on device pick {a.pick >> 2}"
                )
            elif name == "render":
                lines.append(
                    f"  {i}. render live allocations #{a.pick} and #{a.other} (modulo the live count):"
                )
                lines += ["  " + line for line in describe_program(a.program)]
            else:
                lines.append(f"  {i}. {name} (pick {a.pick})")
        return "\n".join(lines)

    def seeds(self) -> list[tuple[str, bytes]]:
        from ..program import AllocRef, Copy, Fill, Write, Xor

        program = (
            Copy(AllocRef(1, 16), AllocRef(2, 100), 300),
            Fill(AllocRef(2, 8), 64, 0x11223344),
            Write(AllocRef(1, 4000), 0xCAFEF00D),
            Xor(AllocRef(1, 0), AllocRef(2, 0), 128),
        )
        a = ACTIONS.index
        out = []
        for kind in range(len(KINDS)):
            actions = (
                Action(a("create-allocation"), kind),
                Action(a("create-allocation"), (kind + 1) % len(KINDS)),
                Action(a("render"), 0, 1, program),
                Action(a("evict"), 0),
                Action(a("render"), 1, 0, program),
                Action(a("page-in"), 0),
                Action(a("relocate"), 1),
                Action(a("render"), 0, 1, program),
                Action(a("destroy-allocation"), 0),
            )
            out.append((f"life-{KINDS[kind][0]}", LifecycleInput(actions).encode()))
        devices = (
            Action(a("create-device")),
            Action(a("create-allocation"), 1 << 2 | 0),
            Action(a("create-allocation"), 2),
            Action(a("destroy-device"), 0),
            Action(a("render"), 0, 1, program),
            Action(a("evict"), 1),
            Action(a("page-in"), 1),
        )
        out.append(("device-dies-first", LifecycleInput(devices).encode()))
        contexts = (
            Action(a("create-device")),
            Action(a("create-allocation"), 0),
            Action(a("create-allocation"), 1 << 2 | 1),
            Action(a("create-allocation"), 1 << 2 | 0),
            Action(a("render"), 0, 0, program),  # on device 0's context
            Action(a("render"), 1, 1 << 3 | 2, program),  # on device 1's context
            Action(a("render"), 2, 0, program),
        )
        out.append(("two-contexts", LifecycleInput(contexts).encode()))
        return out

    def dictionary(self) -> list[bytes]:
        return [bytes([i]) for i in range(len(ACTIONS))]
