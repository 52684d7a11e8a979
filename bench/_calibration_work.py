"""The instrumented work of ``fuzz_calibration.py``: a fixed number of dict and list operations.

It lives in its own module so that ``fuzz_calibration.py`` can import it under
``atheris.instrument_imports()``: atheris then instruments this function the way it
instruments a driver's code (coverage and comparison hooks on every branch), so one
execution costs what a small piece of instrumented Python costs. The cost is fixed by
:data:`ROUNDS`, not by the input: every round is the same handful of operations on
values derived from the input's bytes, whatever its length, so the rate is stable
while libFuzzer mutates the input. ``bench/fuzz.py`` divides each fuzz target's
exec/s by this target's, measured in the same run, to get a machine-independent-ish
figure.
"""

from __future__ import annotations

#: Rounds per execution; each does :data:`OPS_PER_ROUND` dict or list operations. Tuned so
#: the target runs at about 16,000 exec/s on the 2-core reference machine: 46 rounds (368
#: operations) measured 14,700-18,600 exec/s (median 16,500) in 10 s runs there; 25 rounds
#: (200 operations) ran at about 35,000, because instrumented operations cost less than
#: libFuzzer's own per-execution work suggests.
ROUNDS = 46

#: Dict and list operations per round: two dict stores, a dict get, a dict membership test,
#: two list appends and two list indexings.
OPS_PER_ROUND = 8

#: Dict and list operations per execution.
OPS = ROUNDS * OPS_PER_ROUND


def work(data: bytes) -> int:
    """Do :data:`OPS` dict and list operations on values taken from ``data``; return a checksum.

    The number of operations does not depend on the input, so neither does the cost; the
    values do, so the branch in the loop goes both ways and the work cannot be folded.
    """
    table: dict[int, int] = {}
    items: list[int] = [0]
    n = len(data) or 1
    padded = data or b"\x00"
    acc = 0
    for i in range(ROUNDS):
        k = padded[i % n] & 31
        table[k] = i  # dict store
        items.append(table.get(k ^ 1, k))  # dict get, list append
        table[k ^ 2] = items[-1]  # list index, dict store
        items.append(acc & 31)  # list append
        acc += items[i]  # list index
        if k ^ 3 in table:  # dict membership
            acc ^= k
    return acc
