"""Synthetic English postcodes in the real format, with real areas weighted by population.

A postcode is built as AREA + district, space, sector digit + two unit letters (the
letters Royal Mail uses in the inward code). Units per sector are kept near the real
density (~1.4M postcodes in England for ~24M households) so that households share
postcodes as they do in life.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from .draws import folded_array, integer_between, uniform, weighted_choice

# English postcode areas: (area, relative population weight, districts in use), approx.
AREAS: list[tuple[str, float, int]] = [
    ("AL", 0.5, 10), ("B", 3.5, 80), ("BA", 0.8, 16), ("BB", 1.0, 12), ("BD", 1.2, 24),
    ("BH", 1.0, 25), ("BL", 0.6, 9), ("BN", 1.6, 45), ("BR", 0.6, 8), ("BS", 1.9, 49),
    ("CA", 0.5, 28), ("CB", 0.9, 11), ("CH", 1.0, 49), ("CM", 1.4, 24), ("CO", 0.7, 16),
    ("CR", 0.7, 9), ("CT", 0.9, 21), ("CV", 1.4, 37), ("CW", 0.6, 12), ("DA", 0.8, 18),
    ("DE", 1.3, 75), ("DH", 0.5, 9), ("DL", 0.6, 17), ("DN", 1.4, 41), ("DT", 0.4, 11),
    ("DY", 0.9, 14), ("E", 2.0, 20), ("EC", 0.2, 4), ("EN", 0.7, 11), ("EX", 0.9, 39),
    ("FY", 0.5, 8), ("GL", 1.1, 56), ("GU", 1.4, 52), ("HA", 0.8, 9), ("HD", 0.5, 9),
    ("HG", 0.3, 5), ("HP", 0.8, 23), ("HR", 0.3, 9), ("HU", 0.8, 20), ("HX", 0.3, 7),
    ("IG", 0.6, 11), ("IP", 1.1, 33), ("KT", 0.9, 24), ("L", 1.8, 40), ("LA", 0.6, 23),
    ("LE", 1.8, 67), ("LN", 0.5, 13), ("LS", 1.8, 29), ("LU", 0.6, 7), ("M", 2.5, 50),
    ("ME", 1.1, 20), ("MK", 0.9, 46), ("N", 1.6, 22), ("NE", 2.0, 71), ("NG", 2.0, 34),
    ("NN", 1.1, 18), ("NR", 1.2, 35), ("NW", 1.2, 11), ("OL", 0.9, 16), ("OX", 1.1, 29),
    ("PE", 1.8, 38), ("PL", 0.9, 35), ("PO", 1.4, 41), ("PR", 0.9, 26), ("RG", 1.4, 45),
    ("RH", 0.9, 20), ("RM", 1.0, 20), ("S", 2.2, 81), ("SE", 2.1, 28), ("SG", 0.7, 19),
    ("SK", 1.1, 23), ("SL", 0.7, 9), ("SM", 0.4, 7), ("SN", 0.9, 16), ("SO", 1.0, 53),
    ("SP", 0.4, 11), ("SR", 0.5, 9), ("SS", 0.9, 17), ("ST", 1.5, 21), ("SW", 2.0, 20),
    ("TA", 0.6, 24), ("TF", 0.5, 13), ("TN", 1.4, 40), ("TQ", 0.5, 14), ("TR", 0.5, 27),
    ("TS", 1.0, 29), ("TW", 0.9, 20), ("UB", 0.6, 11), ("W", 1.2, 14), ("WA", 1.2, 16),
    ("WC", 0.1, 2), ("WD", 0.5, 25), ("WF", 1.1, 17), ("WN", 0.6, 8), ("WR", 0.7, 15),
    ("WS", 0.8, 15), ("WV", 0.8, 16), ("YO", 0.8, 62),
]
AREA_WEIGHTS = {area: weight for area, weight, _ in AREAS}
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
UNITS_PER_SECTOR = 60
PLACEHOLDER = "ZZ99 9ZZ"  # 'no fixed abode' and similar, as the police and NHS key it


def _inward(seed: int, purpose: str, key: Column) -> Column:
    sector = integer_between(uniform(seed, f"{purpose}:sector", key), 0, 9)
    unit = integer_between(uniform(seed, f"{purpose}:unit", key), 0, UNITS_PER_SECTOR - 1)
    # a fixed scramble of unit -> two letters, one-to-one for units < 400
    letters = len(UNIT_LETTERS)
    first = F.substring(F.lit(UNIT_LETTERS), ((unit * 13 + 5) % letters) + 1, 1)
    second = F.substring(F.lit(UNIT_LETTERS), ((F.floor(unit / letters) * 7 + unit) % letters) + 1, 1)
    return F.concat(sector.cast("string"), first, second)


def random_postcode(seed: int, purpose: str, key: Column) -> Column:
    """A postcode anywhere in England, population-weighted by area."""
    # an index into the area list, so that the area's code and district count are
    # array reads rather than lookups by code
    index = weighted_choice(uniform(seed, f"{purpose}:area", key), {i: w for i, (_, w, _) in enumerate(AREAS)})
    area = F.element_at(folded_array([a for a, _, _ in AREAS]), index + 1)
    districts = F.element_at(folded_array([d for _, _, d in AREAS]), index + 1)
    district = integer_between(uniform(seed, f"{purpose}:district", key), 1, districts)
    return F.concat(area, district.cast("string"), F.lit(" "), _inward(seed, purpose, key))


def nearby_postcode(seed: int, purpose: str, key: Column, postcode: Column) -> Column:
    """Another postcode in the same district (a local move)."""
    outward = F.substring_index(postcode, " ", 1)  # not split(): that compiles a regex per row
    return F.concat(outward, F.lit(" "), _inward(seed, purpose, key))


def moved_postcode(seed: int, purpose: str, key: Column, postcode: Column, local_share: float) -> Column:
    """Where someone at ``postcode`` moves to: usually nearby, otherwise anywhere."""
    stays_local = uniform(seed, f"{purpose}:local", key) < local_share
    return F.when(stays_local, nearby_postcode(seed, purpose, key, postcode)).otherwise(
        random_postcode(seed, purpose, key)
    )
