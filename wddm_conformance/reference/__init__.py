"""The reference display miniport, its emulated GPU and its command encoder."""

from .encoder import CommandEncoder
from .gpu import EmulatedGpu
from .miniport import BusyReferenceMiniport, ReferenceMiniport

__all__ = ["BusyReferenceMiniport", "CommandEncoder", "EmulatedGpu", "ReferenceMiniport"]
