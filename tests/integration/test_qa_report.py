"""The QA report and clerical sample the annual refresh's qa stage wrote for the tiny
release: opened in headless Chromium with every host unresolvable, the page loads without
a console message or a network request and draws every chart; its figures are the
linkage_quality table's; the clerical sample covers every band and scores back."""

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from datafirst_spark.cli import clerical
from datafirst_spark.quality.clerical import BAND_EDGES, sample_path, score_decisions
from datafirst_spark.quality.report import report_path
from datafirst_spark.release.read import publication, read_release_table

pytestmark = pytest.mark.integration

# waits for the charts, then writes what the page fetched and drew where --dump-dom shows it
PROBE = """<script>
window.chartsDrawn.then(() => {
  const charts = [...document.querySelectorAll(".chart")].map(div => ({
    name: div.dataset.chart, marks: div.querySelectorAll("svg g.role-mark > *").length}));  // data marks, not axes
  const fetched = performance.getEntriesByType("resource").map(entry => entry.name);
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({charts, fetched});
  document.body.appendChild(probe);
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium not installed: scripts/setup.sh installs it (Debian package chromium)"
    return found


@pytest.fixture(scope="module")
def report(refreshed_release, tmp_path_factory):
    path = Path(report_path(refreshed_release.lakehouse, refreshed_release.release))
    text = path.read_text(encoding="utf-8")
    probed = tmp_path_factory.mktemp("report") / "probed.html"
    head, tag, tail = text.rpartition("</body>")  # the page's own; the inlined libraries hold the string too
    probed.write_text(head + PROBE + tag + tail, encoding="utf-8")
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=30000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=180, check=False)
    probe = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert probe, result.stderr[-3000:]
    specs = json.loads(re.search(r'<script id="chart-specs" type="application/json">(.*?)</script>', text, re.S)
                       .group(1))
    return {"text": text, "probe": json.loads(probe.group(1).replace("&quot;", '"')), "console":
            [line for line in result.stderr.splitlines() if ":CONSOLE" in line], "specs": specs}


def test_the_report_opens_offline_without_errors_or_requests(report):
    assert report["console"] == []
    assert report["probe"]["fetched"] == []  # scripts and data are inline
    assert not re.search(r'(src|href)\s*=\s*["\']?https?:', report["text"])


def test_every_chart_is_drawn(report):
    charts = {c["name"]: c["marks"] for c in report["probe"]["charts"]}
    assert set(charts) == set(report["specs"])
    for expected in ("inputs", "match_weights", "m_u_parameters", "blocking", "link_rates-0", "probabilities",
                     "cluster_sizes", "recall_by_group-0", "pair_thresholds", "waterfall"):
        assert expected in charts, expected
    assert all(marks > 0 for marks in charts.values()), charts
    assert charts["blocking"] == len(report["specs"]["blocking"]["data"]["values"])  # a bar per rule


def test_report_figures_are_the_published_ones(spark, report, refreshed_release):
    lakehouse, release = refreshed_release.lakehouse, refreshed_release.release
    quality = read_release_table(spark, lakehouse, "linkage_quality", release).filter(
        (F.col("view") == "link") & (F.col("group_by") != "all"))
    published = {(f"{r['method']}@{r['threshold']}", r["group_by"], r["group_value"]): r["recall"]
                 for r in quality.collect() if r["recall"] is not None}
    charted = {(v["method"], v["group_by"], v["group_value"]): v["recall"]
               for name, spec in report["specs"].items() if name.startswith("recall_by_group")
               for v in spec["data"]["values"]}
    assert charted and charted == published
    figures = publication(spark, lakehouse, release)["figures"]
    for name, value in figures.items():  # the headline table
        assert f"<td>{name}</td><td>{value:.4f}</td>" in report["text"], name
    # nothing of a record: the waterfall hides values, the tables hold figures only
    records = spark.read.format("delta").load(lakehouse.staging(release, "pnc", "records"))
    some_ids = [r[0] for r in records.select("source_record_id").limit(200).collect()]
    assert not [i for i in some_ids if i in report["text"]]


def test_clerical_sample_covers_each_band_and_scores_back(refreshed_release, tmp_path, capsys):
    path = Path(sample_path(refreshed_release.lakehouse, refreshed_release.release))
    rows = list(csv.DictReader(path.open()))
    bands = {r["band"] for r in rows}
    assert len(bands) >= 3 and all(r["forename_l"] or r["surname_l"] for r in rows)  # identifiers for reviewers
    assert all(sum(r["band"] == b for r in rows) <= 20 for b in bands)
    # a reviewer says: every pair above the highest edge a match, the rest non-matches but one unsure
    top = f">={BAND_EDGES[-1]:g}"
    for i, row in enumerate(rows):
        row["decision"] = "match" if row["band"] == top else ("unsure" if i == 0 else "non-match")
    reviewed = tmp_path / "reviewed.csv"
    with reviewed.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    scored = {b.band: b for b in score_decisions(None, str(reviewed))}
    assert scored[top].precision == 1.0
    assert all(b.precision == 0.0 for name, b in scored.items() if name != top and b.matches + b.non_matches)
    assert sum(b.reviewed for b in scored.values()) == len(rows)
    assert clerical(["score", str(reviewed)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["band"] for line in lines} == bands
