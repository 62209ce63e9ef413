"""Release R+1's population from release R's: the same people a year on.

Every person of release R is carried over with the same id and attributes, so their
records come out the same (every draw hashes the seed and the person's or record's own
key). On top, from the same seed and the new release's name:

- a new school cohort (the academic year after the latest one), new families, new ids;
- new PNC people never schooled in England;
- pupils with no PNC record who now have one (by sex and group as the first offences);
- PNC people now recorded under a new surname (``current_surname``; the PNC keeps the
  old one as an alias);
- people whose mis-recorded details both sources now correct (``corrected``).

``first_release`` and ``pnc_since_release`` say when a person or their PNC record first
appeared, so that tests and benchmarks can tell changed people from unchanged ones.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .config import SyntheticConfig
from .draws import uniform
from .names import NameSampler
from .population import FAMILY_BLOCK, PEOPLE_COLUMNS, PopulationPlan, build_population, offending_chance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NextYearPlan:
    cohort: int  # the new cohort's academic year (born 1 Sep cohort .. 31 Aug cohort + 1)
    cohort_people: int
    never_in_npd: int
    first_id: int

    def as_dict(self) -> dict[str, int]:
        return vars(self).copy()


def plan_next_year(config: SyntheticConfig, previous: DataFrame, previous_plan: dict[str, int]) -> NextYearPlan:
    """Sizes from the previous release's generation plan; ids and cohort from its people."""
    # a birthday before September belongs to the academic year that started the year before
    latest_cohort, largest_id = previous.agg(
        F.max(F.when(F.col("in_npd_cohorts"), F.year("dob") - F.when(F.month("dob") < 9, 1).otherwise(0))),
        F.max("person_id"),
    ).first()
    spec = config.next_year
    births = config.population.cohort_births
    cohort_people = round(previous_plan["school_people"] * spec.new_cohort_births / sum(births.values()))
    never_in_npd = round(previous_plan["pnc_people"] * spec.new_never_in_npd_share)
    first_id = math.ceil((largest_id + 1) / FAMILY_BLOCK) * FAMILY_BLOCK
    return NextYearPlan(int(latest_cohort) + 1, cohort_people, never_in_npd, first_id)


def next_year_population(spark, config: SyntheticConfig, previous: DataFrame, plan: NextYearPlan,  # noqa: ANN001
                         seed: int, release: str, names: NameSampler, partitions: int | None = None) -> DataFrame:
    """Release ``release``'s people (:data:`PEOPLE_COLUMNS`) from the previous release's."""
    spec = config.next_year
    person = F.col("person_id")
    carried = previous.select(*PEOPLE_COLUMNS)

    new_offender = (F.col("in_npd_cohorts") & ~F.col("offends")
                    & (uniform(seed, f"next_year:{release}:offends", person) < offending_chance(config,
                                                                                               spec.new_offender_rate)))
    carried = carried.withColumns({
        "offends": F.col("offends") | new_offender,
        "pnc_since_release": F.when(new_offender, F.lit(release)).otherwise(F.col("pnc_since_release")),
    })
    changes_surname = F.col("offends") & F.col("current_surname").isNull() & (
        uniform(seed, f"next_year:{release}:surname", person) < spec.surname_change_rate)
    carried = names.draw(carried, {
        "_new_surname": names.surname(F.when(changes_surname, F.col("surname_origin")),
                                      uniform(seed, f"next_year:{release}:surname_draw", person)),
    })
    carried = carried.withColumns({
        "current_surname": F.coalesce("current_surname", F.when(F.col("_new_surname") != F.col("surname"),
                                                                F.col("_new_surname"))),
        "corrected": F.col("corrected") | (uniform(seed, f"next_year:{release}:corrected", person)
                                           < spec.correction_rate),
    }).drop("_new_surname")

    # the new cohort: the population model with one cohort; too young for the PNC's years
    cohort_config = config.model_copy(update={"population": config.population.model_copy(
        update={"cohort_births": {plan.cohort: 1.0}})})
    cohort = build_population(spark, cohort_config, PopulationPlan(plan.cohort_people, 0, 0, 0), seed, names,
                              partitions, plan.first_id, release)
    outsiders_from = math.ceil((plan.first_id + plan.cohort_people) / FAMILY_BLOCK) * FAMILY_BLOCK
    outsiders = build_population(spark, config, PopulationPlan(0, plan.never_in_npd, 0, plan.never_in_npd), seed,
                                 names, partitions, outsiders_from, release)
    log.info("next year %s: cohort %d with %d pupils, %d new people never in NPD, ids from %d", release, plan.cohort,
             plan.cohort_people, plan.never_in_npd, plan.first_id)
    return carried.unionByName(cohort).unionByName(outsiders)
