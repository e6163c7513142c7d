"""Tick and step rounding, done once for every venue and strategy.

Prices and sizes are Decimal end to end; rounding direction is always explicit so that a
take-profit never lands on the wrong side of its target and a size never exceeds what was filled.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal


def round_to_step(value: Decimal, step: Decimal, mode: str = ROUND_HALF_EVEN) -> Decimal:
    """Round ``value`` to a multiple of ``step`` (``step`` > 0) with the given Decimal mode."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    units = (value / step).to_integral_value(rounding=mode)
    return (units * step).quantize(step)


def round_down(value: Decimal, step: Decimal) -> Decimal:
    return round_to_step(value, step, ROUND_FLOOR)


def round_up(value: Decimal, step: Decimal) -> Decimal:
    return round_to_step(value, step, ROUND_CEILING)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return step > 0 and (value % step) == 0
