import logging

import pytest

from datafirst_spark.timing import JOB_DESCRIPTION, STAGE_PROPERTY, StageTimer


def test_a_stage_describes_the_spark_jobs_it_runs_and_restores_the_description_after(spark):
    context = spark.sparkContext
    context.setJobDescription("the caller's")
    timer = StageTimer(logging.getLogger("test"))
    try:
        with timer.stage("outer") as figures:
            assert context.getLocalProperty(JOB_DESCRIPTION) == context.getLocalProperty(STAGE_PROPERTY) == "outer"
            with timer.stage("inner"):
                assert context.getLocalProperty(JOB_DESCRIPTION) == context.getLocalProperty(STAGE_PROPERTY) == "inner"
            assert context.getLocalProperty(STAGE_PROPERTY) == "outer"
            figures["rows"] = spark.range(3).count()
        with pytest.raises(ValueError), timer.stage("failing"):
            raise ValueError("stage failed")
        assert context.getLocalProperty(JOB_DESCRIPTION) == "the caller's"
        assert context.getLocalProperty(STAGE_PROPERTY) is None
        assert timer.rows == {"outer": 3} and set(timer.seconds) == {"outer", "inner"}
    finally:
        context.setLocalProperty(JOB_DESCRIPTION, None)
