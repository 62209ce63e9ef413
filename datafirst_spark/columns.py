"""Column helpers that keep per-row work in Spark's generated code.

Spark runs higher-order functions (``filter``, ``transform``, ``exists`` and
``array_compact``, which is ``filter(x -> x IS NOT NULL)``) interpreted, and with them
every expression inside their arguments: a ``concat`` of arrays or a regex cleaning nested
in an ``array_compact`` is evaluated row by row through ``eval``, not compiled. In Spark
4.2 each interpreted read of an array element also looks up a configuration whose default
calls ``System.getenv``. The helpers here build the same values from expressions that are
compiled.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def distinct_present(values: Column, element_type: str) -> Column:
    """The distinct non-null elements of the array ``values``, in first-seen order (an
    empty array when there are none; null when ``values`` is null).

    What ``array_distinct(array_compact(values))`` gives, as ``array_except(values,
    array(null))``: ``array_except`` keeps the first array's order, drops duplicates and
    drops nulls when the second array holds one, and it is compiled.
    """
    return F.array_except(values, F.array(F.lit(None).cast(element_type)))
