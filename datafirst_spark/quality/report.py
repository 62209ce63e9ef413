"""The QA report of a published release: one self-contained HTML file under
``reports/<release>/`` (scripts and data inline: it opens offline and fetches nothing).

    Inputs    records read, standardised and quarantined per source, by reason
    Model     Splink's match-weight and m/u charts for the model used; comparisons per
              blocking rule
    Outcome   link rate of the linked-from source (PNC) overall and by birth cohort, sex and
              ethnicity group, Splink beside the deterministic baseline; match probabilities;
              cluster sizes
    Quality   precision, recall and F1 against truth overall and per group, and pair
              precision/recall across thresholds (synthetic releases)
    Change    people added, carried, merged and split since the previous release, and the
              change in link rate per group
    Pairs     a few borderline pairs explained by Splink's waterfall chart (values hidden)

Every figure is gathered as a small list of rows in Spark (the report never collects a
release's records), shown as a chart with a table of the exact figures beside it. The
charts are Vega-Lite specs drawn by the vega, vega-lite and vega-embed builds that Splink
ships, inlined into the page.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..ingest import RECORDS_TABLE, staged_records
from ..ingest import REPORT_FILE as INGEST_REPORT
from ..lakehouse import Lakehouse, list_data_files, read_json
from ..linkage.run import REPORT_FILE as LINKAGE_REPORT
from ..linkage.run import linkage_path
from ..linkage.spec import LinkageSpec
from ..refresh import link_rates_by_group, qa_path
from ..release.read import diff_releases, publication, read_release_table

log = logging.getLogger(__name__)

REPORT_FILE = "qa_report.html"
PAIR_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
BORDERLINE_PAIRS = 3


def report_path(lakehouse: Lakehouse, release: str) -> str:
    return f"{lakehouse.area('reports')}/{release}/{REPORT_FILE}"


def _rows(df: DataFrame) -> list[dict[str, Any]]:
    return [r.asDict() for r in df.collect()]


def link_rate_rows(spark: SparkSession, lakehouse: Lakehouse, release: str, spec: LinkageSpec) -> list[dict[str, Any]]:
    """Link rates by group for the published (Splink) people, as the refresh's qa stage
    stored them (computed here for a release it did not refresh), and for the
    deterministic baseline."""
    target = next(d for d in spec.datasets if d != spec.link_from)
    records = staged_records(spark, lakehouse, release, [spec.link_from])
    stored = qa_path(lakehouse, release, "link_rates")
    if list_data_files(spark, f"{stored}/_delta_log") is not None:
        splink = spark.read.format("delta").load(stored).drop("release")
    else:
        published = read_release_table(spark, lakehouse, "person_links", release)
        splink = link_rates_by_group(published, records, spec.link_from, target)
    rows = [r | {"method": "splink"} for r in _rows(splink)]
    clusters = spark.read.format("delta").load(linkage_path(lakehouse, release, spec.linkage, "clusters"))
    baseline = clusters.filter(F.col("method") == "deterministic").withColumnRenamed("cluster_id", "person_id")
    rows += [r | {"method": "deterministic", "threshold": None}
             for r in _rows(link_rates_by_group(baseline, records, spec.link_from, target))]
    return rows


def pair_threshold_rows(pairs: DataFrame, truth: DataFrame) -> list[dict[str, Any]]:
    """Cross-source pairs' precision and recall against truth at each of PAIR_THRESHOLDS
    (recall of the true cross-source pairs that blocking found)."""
    ids = truth.select("source_dataset", "source_record_id", "true_person_id")
    left = ids.select(*[F.col(c).alias(f"{c}_l") for c in ids.columns])
    right = ids.select(*[F.col(c).alias(f"{c}_r") for c in ids.columns])
    cross = (pairs.filter((F.col("source_dataset_l") != F.col("source_dataset_r")) & F.col("excluded_by").isNull())
             .join(left, ["source_dataset_l", "source_record_id_l"]).join(right, ["source_dataset_r", "source_record_id_r"])
             .withColumn("match", F.col("true_person_id_l") == F.col("true_person_id_r")))
    aggregates = []
    for t in PAIR_THRESHOLDS:
        kept = F.col("match_probability") >= t
        aggregates += [F.count_if(kept).alias(f"predicted_{t}"), F.count_if(kept & F.col("match")).alias(f"tp_{t}")]
    found = cross.agg(F.count_if("match").alias("matches"), *aggregates).first()
    rows = []
    for t in PAIR_THRESHOLDS:
        predicted, tp = found[f"predicted_{t}"], found[f"tp_{t}"]
        rows.append({"threshold": t, "predicted": predicted, "true_positives": tp,
                     "precision": round(tp / predicted, 5) if predicted else None,
                     "recall": round(tp / found["matches"], 5) if found["matches"] else None})
    return rows


def gather(spark: SparkSession, lakehouse: Lakehouse, release: str, spec: LinkageSpec) -> dict[str, Any]:
    """Every figure the report shows, as plain rows."""
    entry = publication(spark, lakehouse, release)
    linkage = read_json(spark, linkage_path(lakehouse, release, spec.linkage, LINKAGE_REPORT))
    data: dict[str, Any] = {"release": release, "linkage": spec.linkage, "publication": entry["publication"],
                            "previous_release": entry["previous_release"], "model_sha256": entry["model_sha256"],
                            "figures": dict(entry["figures"]), "link_from": spec.link_from}
    ingested = {d: read_json(spark, lakehouse.staging(release, d, INGEST_REPORT)) for d in spec.datasets}
    data["inputs"] = [{"dataset": d, **{k: r[k] for k in ("input_rows", "valid_rows", "quarantined_rows")},
                       "reasons": r["quarantine_reasons"]} for d, r in ingested.items()]
    data["blocking"] = [{"rule": spec.model.blocking_rules_to_generate_predictions[int(k)].description,
                         "rule_number": int(k), "pairs_scored": v} for k, v in sorted(linkage["pairs_by_rule"].items(),
                                                                                       key=lambda kv: int(kv[0]))]
    pairs = spark.read.format("delta").load(linkage_path(lakehouse, release, spec.linkage, "pairs"))
    data["link_rates"] = link_rate_rows(spark, lakehouse, release, spec) if spec.link_from else []
    data["probabilities"] = _rows(
        pairs.withColumn("bin", F.least(F.floor(F.col("match_probability") * 20) / 20, F.lit(0.95)))
        .withColumn("kept", F.when(F.col("excluded_by").isNull(), "scored").otherwise("excluded"))
        .groupBy("bin", "kept").count().orderBy("bin", "kept"))
    links = read_release_table(spark, lakehouse, "person_links", release)
    data["cluster_sizes"] = _rows(links.groupBy("threshold", "person_id").count()
                                  .groupBy("threshold", F.col("count").alias("records")).agg(F.count("*").alias("people"))
                                  .orderBy("threshold", "records"))
    quality = read_release_table(spark, lakehouse, "linkage_quality", release)
    data["quality"] = _rows(quality.filter(F.col("view") == "link").select(
        "method", "threshold", "group_by", "group_value", "precision", "recall", "f1", "actual", "true_positives"))
    truth_path = lakehouse.truth(release, "records")
    data["pair_thresholds"] = (pair_threshold_rows(pairs, spark.read.format("delta").load(truth_path))
                               if list_data_files(spark, f"{truth_path}/_delta_log") is not None else [])
    previous = entry["previous_release"]
    data["change"], data["link_rate_change"] = [], []
    if previous:
        data["change"] = _rows(diff_releases(spark, lakehouse, previous, release))
        before = {(r["method"], r["threshold"], r["group_by"], r["group_value"]): r["link_rate"]
                  for r in link_rate_rows(spark, lakehouse, previous, spec)}
        data["link_rate_change"] = [
            {**{k: r[k] for k in ("threshold", "group_by", "group_value")}, "previous": before[key],
             "current": r["link_rate"], "change": round(r["link_rate"] - before[key], 6)}
            for r in data["link_rates"] if r["method"] == "splink"
            for key in [(r["method"], r["threshold"], r["group_by"], r["group_value"])] if key in before]
    return data


def model_and_waterfall_charts(spark: SparkSession, lakehouse: Lakehouse, release: str, spec: LinkageSpec,
                               model_path: str) -> dict[str, Any]:
    """Splink's own charts of the model used, and the waterfall of the scored pairs nearest
    the lowest published threshold (record values hidden: the report holds no identifier)."""
    from ..linkage.model import UNIQUE_ID, linker_for, load_model, splink_input, splink_settings

    saved = load_model(spark, model_path)
    records = {d: spark.read.format("delta").load(lakehouse.staging(release, d, RECORDS_TABLE)) for d in spec.datasets}
    # the waterfall needs each comparison's Bayes factor, which predict keeps only when asked
    settings = splink_settings(spec, saved.parameters) | {"retain_intermediate_calculation_columns": True,
                                                          "retain_matching_columns": True}
    linker = linker_for(spark, spec, records, settings)
    charts = {"match_weights": linker.visualisations.match_weights_chart().chart_dict,
              "m_u_parameters": linker.visualisations.m_u_parameters_chart().chart_dict}
    threshold = min(spec.clustering.thresholds)
    pairs = spark.read.format("delta").load(linkage_path(lakehouse, release, spec.linkage, "pairs"))
    nearest = (pairs.filter(F.col("excluded_by").isNull())
               .orderBy(F.abs(F.col("match_probability") - threshold), "source_record_id_l", "source_record_id_r")
               .limit(BORDERLINE_PAIRS).collect())
    scored = []
    for pair in nearest:
        sides = []
        for side in ("l", "r"):
            frame = splink_input(records[pair[f"source_dataset_{side}"]]).filter(
                F.col(UNIQUE_ID) == pair[f"source_record_id_{side}"])
            sides.append(linker.table_management.register_table(frame, f"__datafirst_report_{side}", overwrite=True))
        scored += linker.inference.score_pair(sides[0], sides[1]).as_record_list()
    if scored:
        charts["waterfall"] = linker.visualisations.waterfall_chart(scored, filter_nulls=False,
                                                                    remove_sensitive_data=True).chart_dict
    charts["borderline"] = [{"match_probability": round(float(p["match_probability"]), 4),
                             "match_weight": round(float(p["match_weight"]), 3)} for p in nearest]
    return charts


# ---------------------------------------------------------------- rendering

def _bar(values: list[dict[str, Any]], x: str, y: str, title: str, color: str | None = None,
         x_type: str = "nominal", log_y: bool = False) -> dict[str, Any]:
    encoding: dict[str, Any] = {
        "x": {"field": x, "type": x_type, "sort": None},
        "y": {"field": y, "type": "quantitative", **({"scale": {"type": "symlog"}, "stack": None} if log_y else {})},
    }
    if color:
        encoding["color"] = {"field": color, "type": "nominal"}
        encoding["xOffset"] = {"field": color}
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": title,
            "data": {"values": values}, "mark": {"type": "bar", "tooltip": {"content": "data"}},
            "encoding": encoding, "width": 420, "height": 220}


def _bars_by_group(values: list[dict[str, Any]], y: str, title: str, color: str) -> list[dict[str, Any]]:
    """One bar chart per ``group_by`` (all, sex, ethnicity group, birth cohort)."""
    groups = sorted({v["group_by"] for v in values}, key=lambda g: (g != "all", g))
    return [_bar([v for v in values if v["group_by"] == g], "group_value", y, f"{title}: {g}", color=color)
            for g in groups]


def _line(values: list[dict[str, Any]], x: str, ys: list[str], title: str) -> dict[str, Any]:
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": title,
            "data": {"values": values}, "transform": [{"fold": ys, "as": ["figure", "value"]}],
            "mark": {"type": "line", "point": True, "tooltip": True},
            "encoding": {"x": {"field": x, "type": "quantitative", "scale": {"zero": False}},
                         "y": {"field": "value", "type": "quantitative", "scale": {"zero": False}},
                         "color": {"field": "figure", "type": "nominal"}}, "width": 420, "height": 220}


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p class='none'>none</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:  # noqa: ANN401 - any figure
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(data: dict[str, Any], charts: dict[str, Any]) -> str:
    """The report's HTML: every chart a Vega-Lite spec, the libraries and data inline."""
    from splink.internals.html_utils import CHART_LIBRARIES, json_for_html, load_chart_libraries

    specs: dict[str, dict[str, Any]] = {}
    sections: list[str] = []

    def chart(name: str, spec: dict[str, Any] | list[dict[str, Any]] | None) -> str:
        if not spec:
            return ""
        if isinstance(spec, list):
            return "".join(chart(f"{name}-{i}", one) for i, one in enumerate(spec))
        specs[name] = spec
        return f"<div class='chart' id='chart-{name}' data-chart='{name}'></div>"

    def section(title: str, *parts: str) -> None:
        sections.append(f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>")

    reasons = [{"dataset": i["dataset"], "reason": k, "rows": v} for i in data["inputs"] for k, v in i["reasons"].items()]
    section("Inputs", chart("inputs", _bar([{"dataset": i["dataset"], "rows": i[k], "kind": k}
                                            for i in data["inputs"] for k in ("valid_rows", "quarantined_rows")],
                                           "dataset", "rows", "Records standardised and quarantined", color="kind")),
            _table(data["inputs"], ["dataset", "input_rows", "valid_rows", "quarantined_rows"]),
            "<h3>Quarantined rows by reason</h3>", _table(reasons))
    section("Model", f"<p>Model SHA-256 <code>{html.escape(data['model_sha256'])}</code></p>",
            chart("match_weights", charts.get("match_weights")), chart("m_u_parameters", charts.get("m_u_parameters")),
            chart("blocking", _bar(data["blocking"], "rule", "pairs_scored", "Scored pairs per blocking rule "
                                   "(pairs at or above the kept probability)")), _table(data["blocking"]))
    splink_rates = [r for r in data["link_rates"] if r["method"] == "splink"]
    lowest = min((r["threshold"] for r in splink_rates), default=None)
    beside = [r | {"method": f"splink@{r['threshold']}"} for r in splink_rates if r["threshold"] == lowest]
    beside += [r for r in data["link_rates"] if r["method"] == "deterministic"]
    section(f"Outcome: {data['link_from']} records linked",
            chart("link_rates", _bars_by_group(beside, "link_rate", "Link rate, Splink beside the deterministic "
                                               "baseline", color="method")),
            _table(sorted(data["link_rates"], key=lambda r: (r["group_by"], r["group_value"], r["method"])),
                   ["method", "threshold", "group_by", "group_value", "records", "linked", "link_rate"]),
            chart("probabilities", _bar(data["probabilities"], "bin", "count", "Scored pairs by match probability",
                                        color="kept", x_type="ordinal", log_y=True)),
            chart("cluster_sizes", _bar(data["cluster_sizes"], "records", "people", "People by number of records",
                                        color="threshold", x_type="ordinal", log_y=True)),
            _table(data["cluster_sizes"]))
    quality = [r for r in data["quality"] if r["recall"] is not None]
    if quality:
        overall = [r for r in quality if r["group_by"] == "all"]
        groups = [r | {"method": f"{r['method']}@{r['threshold']}"} for r in quality if r["group_by"] != "all"]
        section("Quality against truth",
                _table(overall, ["method", "threshold", "precision", "recall", "f1", "true_positives", "actual"]),
                chart("recall_by_group", _bars_by_group(groups, "recall", "Recall", color="method")),
                chart("pair_thresholds", _line(data["pair_thresholds"], "threshold", ["precision", "recall"],
                                               "Cross-source pairs: precision and recall by threshold")),
                _table(data["pair_thresholds"]),
                "<h3>Every group</h3>", _table(sorted(quality, key=lambda r: (r["group_by"], str(r["group_value"]),
                                                                          r["method"], r["threshold"]))))
    if data["previous_release"]:
        section(f"Change since {data['previous_release']}",
                chart("change", _bar(data["change"], "event", "people", "People by ID event", color="threshold",
                                     log_y=True)),  # a few merges beside thousands carried
                _table(data["change"]),
                chart("link_rate_change", _bars_by_group(data["link_rate_change"], "change",
                                                         "Change in link rate", color="threshold")),
                _table(data["link_rate_change"]))
    if charts.get("waterfall"):
        section("Borderline pairs explained", "<p>The scored pairs nearest the lowest published threshold; "
                "record values are hidden.</p>", _table(charts["borderline"]), chart("waterfall", charts["waterfall"]))

    # every spec, Splink's included, is drawn by the Vega-Lite build inlined here: say so
    schema = f"https://vega.github.io/schema/vega-lite/v{CHART_LIBRARIES['vega-lite']}.json"
    specs = {name: {**spec, "$schema": schema} for name, spec in specs.items()}
    libraries = load_chart_libraries()
    scripts = "".join(f"<script>{libraries[name]}</script>" for name in ("vega", "vega-lite", "vega-embed"))
    figures = _table([{"figure": k, "value": v} for k, v in sorted(data["figures"].items())])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QA report: release {html.escape(data['release'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}th{{background:#eee}}section{{margin-bottom:2.5em}}
.chart{{margin:1em 0}}</style>{scripts}</head>
<body><h1>QA report: {html.escape(data['linkage'])} release {html.escape(data['release'])}
(publication {data['publication']})</h1>{figures}{''.join(sections)}
<script id="chart-specs" type="application/json">{json_for_html(specs)}</script>
<script>
const specs = JSON.parse(document.getElementById("chart-specs").textContent);
window.chartsDrawn = Promise.all(Object.entries(specs).map(([name, spec]) =>
  vegaEmbed("#chart-" + name, spec, {{renderer: "svg", actions: false}})
    .catch(error => console.error("chart " + name + ": " + error))));
</script></body></html>
"""


def write_report(spark: SparkSession, lakehouse: Lakehouse, release: str, spec: LinkageSpec, model_path: str) -> str:
    """Gather, render and write the report of ``release``; its path."""
    from ..lakehouse import write_text

    data = gather(spark, lakehouse, release, spec)
    charts = model_and_waterfall_charts(spark, lakehouse, release, spec, model_path)
    path = report_path(lakehouse, release)
    write_text(spark, path, render(data, charts))
    log.info("qa %s: report written to %s", release, path)
    return path
