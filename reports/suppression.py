"""Complementary cell suppression for published count tables.

A table is a set of cells (each a key and a count) and the additive equations that tie them
(a row's cells add up to the row total, the totals add up to the grand total...). Hiding only
the small cells is not enough: a total minus the published cells gives a hidden cell back.

`protect` hides:
1. (primary) every cell from 1 to k - 1;
2. (secondary) in every equation (row, column, margin) that has exactly one hidden cell, the
   next smallest published cell, over and over until no equation has a single hidden cell;
3. then, as a last check, it solves the published equations exactly (`determined`): any hidden
   cell that the equations still give back (a hidden cell that is the only link between two
   groups of hidden cells, which the row/column rule cannot see) gets another cell of its
   equations hidden with it, and the rule runs again.
Zeros are published (a zero says nobody was counted, which reveals no one) and chosen as a
complement only when no cell above zero is left in the equation.

What this guarantees: no hidden count can be computed exactly from the published ones.
Bounds are not checked (a hidden cell may be narrowed to a range); the threshold k keeps the
published counts themselves large enough.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

Key = tuple[str, ...]
Equation = tuple[tuple[Key, int], ...]  # sum(coefficient * value) == 0


def primary(values: Mapping[Key, int], k: int) -> set[Key]:
    """The cells from 1 to k - 1."""
    return {key for key, value in values.items() if 0 < value < k}


def _smallest(values: Mapping[Key, int], keys: set[Key]) -> Key | None:
    """The cell to hide with another: the smallest count above zero (zeros only as a last resort)."""
    if not keys:
        return None
    return min(keys, key=lambda key: (values[key] == 0, values[key], key))


def _single_hidden_rule(values: Mapping[Key, int], equations: Sequence[Equation], hidden: set[Key]) -> bool:
    """One pass of the rule: an equation with exactly one hidden cell hides its next smallest.
    Returns whether anything was hidden."""
    added = False
    for equation in equations:
        keys = {key for key, _ in equation}
        if len(keys & hidden) == 1:
            choice = _smallest(values, keys - hidden)
            if choice is not None:
                hidden.add(choice)
                added = True
    return added


def determined(values: Mapping[Key, int], equations: Sequence[Equation], hidden: set[Key]) -> dict[Key, int]:
    """The hidden cells that the published cells and the equations give back exactly, with the
    value an attacker computes. Gaussian elimination over the rationals: a hidden cell is
    determined when its unit vector is in the row space of the equations restricted to the
    hidden cells (then its reduced row has a single non-zero entry)."""
    unknowns = sorted(hidden)
    column = {key: index for index, key in enumerate(unknowns)}
    rows: list[list[Fraction]] = []
    for equation in equations:
        row = [Fraction(0)] * (len(unknowns) + 1)  # the last entry: minus the known part
        for key, coefficient in equation:
            if key in column:
                row[column[key]] += coefficient
            else:
                row[-1] -= coefficient * values[key]
        if any(row[:-1]):
            rows.append(row)
    pivot_row = 0
    for col in range(len(unknowns)):
        found = next((r for r in range(pivot_row, len(rows)) if rows[r][col] != 0), None)
        if found is None:
            continue
        rows[pivot_row], rows[found] = rows[found], rows[pivot_row]
        pivot = rows[pivot_row][col]
        rows[pivot_row] = [entry / pivot for entry in rows[pivot_row]]
        for r in range(len(rows)):
            if r != pivot_row and rows[r][col] != 0:
                factor = rows[r][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[pivot_row], strict=True)]
        pivot_row += 1
    found_values: dict[Key, int] = {}
    for row in rows[:pivot_row]:
        nonzero = [index for index, entry in enumerate(row[:-1]) if entry != 0]
        if len(nonzero) == 1:
            found_values[unknowns[nonzero[0]]] = int(row[-1] / row[nonzero[0]])
    return found_values


def protect(values: Mapping[Key, int], equations: Sequence[Equation], k: int) -> set[Key]:
    """The cells to hide (primary and complementary) so that no hidden count can be computed."""
    hidden = primary(values, k)
    while True:
        while _single_hidden_rule(values, equations, hidden):
            pass
        leaks = determined(values, equations, hidden)
        if not leaks:
            return hidden
        leak = min(leaks)
        near = {key for equation in equations if leak in dict(equation) for key, _ in equation} - hidden
        choice = _smallest(values, near) or _smallest(values, set(values) - hidden)
        if choice is None:  # everything is hidden already
            return hidden
        hidden.add(choice)
