"""A second, independent correct driver, written from docs/INTERPRETING.md alone (issue 13).

``--driver=tests.second_driver:Miniport``. Its own user-mode format (:mod:`.umd`), GPU
ISA (:mod:`.isa`) and GPU model (:mod:`.gpu`); see :mod:`.miniport` for the legal choices
it makes that the reference driver does not.
"""

from .gpu import SecondGpu
from .miniport import Miniport, SecondMiniport
from .umd import SecondEncoder

__all__ = ["Miniport", "SecondEncoder", "SecondGpu", "SecondMiniport"]
