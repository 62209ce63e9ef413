"""Publishing a linkage as a release, and reading releases back.

    tables.py     curated Delta tables holding every release (one commit per release,
                  time travel, retention, constraints)
    curate.py     staged linkage outputs -> the curated tables' rows (DataFrames only)
    audit.py      the checks a release must pass before it is published
    registry.py   the ``releases`` table: one row per publication, written last
    publish.py    write-audit-publish for one release, and its research extract
    read.py       list releases, read a table as a release published it, diff two releases
"""
