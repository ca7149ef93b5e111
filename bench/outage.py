"""What a client saw around a fault: pure functions over http_probe samples."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Outage:
    to_expected_s: float | None  # fault -> first answer from the expected server (None: never)
    longest_gap_s: float  # longest stretch after the fault without any good answer
    failed_requests: int  # requests after the fault that got no good answer
    fault_at: float | None = None  # wall time of the fault
    # fault -> the good answer that ended the longest gap (None: no gap, or it never ended). Not
    # to_expected_s when the expected server also answered before the fault took effect (a
    # director's power-off with the real servers up).
    back_s: float | None = None


def measure(samples: list[dict], fault_at: float, expect: str) -> Outage:
    """Outage seen by the client for a fault injected at wall time `fault_at`.

    The gap runs from the last good answer before a failure (or the fault itself) to the next
    good answer; a failure that lasts to the end of the samples counts up to the last sample.
    """
    after = sorted((s for s in samples if "t" in s and s["t"] >= fault_at), key=lambda s: s["t"])
    first_expected = next((s["t"] for s in after if s["ok"] and expect in s["body"]), None)
    longest, last_good, failing, failed, back = 0.0, fault_at, False, 0, None
    for sample in after:
        if sample["ok"]:
            if failing and sample["t"] - last_good > longest:
                longest, back = sample["t"] - last_good, sample["t"]
            failing, last_good = False, sample["t"]
        else:
            failing, failed = True, failed + 1
    if failing and after:
        longest = max(longest, after[-1]["t"] - last_good)
    return Outage(
        to_expected_s=None if first_expected is None else round(first_expected - fault_at, 3),
        longest_gap_s=round(longest, 3),
        failed_requests=failed,
        fault_at=fault_at,
        back_s=None if back is None else round(back - fault_at, 3),
    )


def summary(values: list[float | None]) -> str:
    """'median / max (n=N)' over measured values; a trial that never recovered is shown apart."""
    measured = [v for v in values if v is not None]
    lost = len(values) - len(measured)
    if not measured:
        return f"no recovery (n={len(values)})"
    text = f"{statistics.median(measured):.2f} / {max(measured):.2f} s (n={len(measured)})"
    return text + (f", {lost} never recovered" if lost else "")
