"""System memory: 4 KiB pages identified by page frame number (PFN).

System memory belongs to the operating system, so it lives in the harness, not in
the GPU model: the memory manager allocates MDLs from it as backing store for
evicted allocations and for aperture mappings, and the emulated GPU reaches it by
physical address (``pfn * 4096 + offset``), as a bus-mastering device would.

PFNs are handed out in rising order, wrapping round at the top: a freed frame is handed
out again only after every other free frame has been, so a stale mapping to a freed
page faults instead of silently reaching a new owner (ALL-ISOLATION: "never freed
pages"). The only bookkeeping is the allocated pages and one cursor, so a kernel that
allocates and frees for hours (a fuzz campaign) holds no record of its past frames.
"""

from __future__ import annotations

from .ddi import MDL, PAGE_SIZE
from .errors import HarnessError

#: The first PFN handed out: physical addresses below 1 MiB are never system RAM here,
#: so a NULL or tiny address always faults.
FIRST_PFN = 0x100


class SystemMemory:
    """Page-granular system RAM below ``max_pages * 4096`` (default 4 GiB of address space)."""

    def __init__(self, max_pages: int = 1 << 20) -> None:
        self.max_pages = max_pages
        self.pages: dict[int, bytearray] = {}
        self._cursor = FIRST_PFN

    @property
    def limit(self) -> int:
        """One past the highest physical address that can be system RAM."""
        return self.max_pages * PAGE_SIZE

    def allocate(self, count: int) -> tuple[int, ...]:
        """Allocate ``count`` zeroed pages; returns their PFNs (not contiguous in general)."""
        out: list[int] = []
        for _ in range(count):
            if len(self.pages) >= self.max_pages - FIRST_PFN:
                raise HarnessError(f"system memory exhausted ({self.max_pages} pages)")
            pfn = self._cursor
            while pfn in self.pages:
                pfn = self._after(pfn)
            self._cursor = self._after(pfn)
            self.pages[pfn] = bytearray(PAGE_SIZE)
            out.append(pfn)
        return tuple(out)

    def _after(self, pfn: int) -> int:
        return pfn + 1 if pfn + 1 < self.max_pages else FIRST_PFN

    def allocate_mdl(self, byte_count: int) -> MDL:
        """An MDL describing freshly allocated pages for ``byte_count`` bytes."""
        pages = max(1, -(-byte_count // PAGE_SIZE))
        return MDL(self.allocate(pages), byte_count)

    def free(self, pfns: tuple[int, ...] | list[int]) -> None:
        """Return pages; any later access to them faults until they are handed out again."""
        for pfn in pfns:
            if self.pages.pop(pfn, None) is None:
                raise HarnessError(f"freeing page frame 0x{pfn:X} that is not allocated")

    def page(self, pfn: int) -> bytearray | None:
        """The bytes of page ``pfn``, or None if it is not allocated."""
        return self.pages.get(pfn)

    def read(self, address: int, length: int) -> bytes:
        """Harness-side read by physical address (no access logging)."""
        out = bytearray()
        while length > 0:
            pfn, off = divmod(address, PAGE_SIZE)
            page = self.pages.get(pfn)
            if page is None:
                raise HarnessError(f"harness read of unallocated system page 0x{pfn:X}")
            n = min(length, PAGE_SIZE - off)
            out += page[off : off + n]
            address += n
            length -= n
        return bytes(out)

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        """Harness-side write by physical address."""
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            pfn, off = divmod(address + pos, PAGE_SIZE)
            page = self.pages.get(pfn)
            if page is None:
                raise HarnessError(f"harness write to unallocated system page 0x{pfn:X}")
            n = min(len(view) - pos, PAGE_SIZE - off)
            page[off : off + n] = view[pos : pos + n]
            pos += n

    def read_mdl(self, mdl: MDL, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at byte ``offset`` of the memory an MDL describes."""
        parts: list[memoryview] = []
        pfns, pages = mdl.pfns, self.pages
        while length > 0:
            index, off = divmod(offset, PAGE_SIZE)
            n = min(length, PAGE_SIZE - off)
            page = pages.get(pfns[index])
            if page is None:
                raise HarnessError(f"harness read of unallocated system page 0x{pfns[index]:X}")
            parts.append(memoryview(page)[off : off + n])
            offset += n
            length -= n
        return b"".join(parts)

    def write_mdl(self, mdl: MDL, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at byte ``offset`` of the memory an MDL describes."""
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            n = min(len(view) - pos, PAGE_SIZE - (offset + pos) % PAGE_SIZE)
            self.write(mdl.physical_address(offset + pos), view[pos : pos + n])
            pos += n
