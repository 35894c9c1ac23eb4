"""The Amazon Shopping Queries dataset (ESCI) files, as SQID uses them.

``shopping_queries_dataset_examples.parquet``: one judgement per row, columns ``example_id,
query, query_id, product_id, product_locale, esci_label, small_version, large_version,
split``; ``esci_label`` is E (exact), S (substitute), C (complement) or I (irrelevant).
``shopping_queries_dataset_products.parquet``: ``product_id, product_title, ...,
product_locale``. Products are keyed by ASIN, like the published folders.

The default selection is SQID's own (../shared/seeds/001_6faff9b5348246a3.txt): locale
``us``, ``small_version = 1`` (the Task 1 set) and split ``test``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl

from pipeline.db import connect, count
from pipeline.errors import UserError
from pipeline.params import param
from pipeline.sql import execute_script, quote_literal

EXAMPLE_COLUMNS = (
    "example_id",
    "query",
    "query_id",
    "product_id",
    "product_locale",
    "esci_label",
    "small_version",
    "large_version",
    "split",
)
PRODUCT_COLUMNS = ("product_id", "product_locale")  # the ones read here
# ESCI paper, Task 1: nDCG gains per label.
GAINS = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}


@dataclass(frozen=True)
class EsciSelection:
    """Which ESCI judgements to use (default: SQID's)."""

    esci_locale: Literal["us", "es", "jp", "all"] = param(
        "us", help="product_locale of the judgements (default us, as SQID)"
    )
    esci_version: Literal["small", "large", "all"] = param(
        "small", help="small: small_version = 1, the Task 1 set (default, as SQID); large; all"
    )
    esci_split: Literal["test", "train", "all"] = param(
        "test", help="ESCI split of the judgements (default test, as SQID)"
    )


def _check_columns(con: duckdb.DuckDBPyConnection, path: Path, need: tuple[str, ...]) -> None:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        have = {
            r[0]
            for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({quote_literal(str(path))})"
            ).fetchall()
        }
    except (duckdb.IOException, duckdb.InvalidInputException) as e:
        raise UserError(f"{path}: not a parquet file ({str(e).splitlines()[0]})") from e
    missing = [c for c in need if c not in have]
    if missing:
        raise UserError(f"{path}: not an ESCI file: columns {missing} are missing")


def read_judgements(
    path: str | Path,
    asins: list[str],
    selection: EsciSelection = EsciSelection(),
    con: duckdb.DuckDBPyConnection | None = None,
) -> tuple[pl.DataFrame, dict]:
    """The selected judgements of the products in ``asins`` (node i = asins[i]).

    Returns (query_id, query, product_id, node_id, esci_label, gain) sorted by query_id and
    node_id, and counts: examples and products of the selection, judgements and queries in
    the folder, rejected judgements by reason.
    """
    path = Path(path)
    con = con or connect()
    _check_columns(con, path, EXAMPLE_COLUMNS)
    nodes = pl.DataFrame(
        {"asin": asins, "node_id": range(len(asins))}, schema_overrides={"node_id": pl.Int64}
    )
    con.register("folder_nodes", nodes.to_arrow())
    params = {
        "path": str(path),
        "locale": selection.esci_locale,
        "version": selection.esci_version,
        "split": selection.esci_split,
    }
    try:
        execute_script(con, "esci_judgements", params)
    except (duckdb.ConversionException, duckdb.BinderException) as e:
        raise UserError(f"{path}: unexpected column types ({str(e).splitlines()[0]})") from e
    rejected = dict(
        con.execute(
            "SELECT reject_reason, count(*) FROM esci_selected WHERE reject_reason IS NOT NULL "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
    )
    good = con.sql(
        "SELECT query_id, trim(query) AS query, product_id, node_id, esci_label "
        "FROM esci_selected WHERE node_id IS NOT NULL AND reject_reason IS NULL "
        "ORDER BY query_id, node_id"
    ).pl()
    good = good.with_columns(
        pl.col("esci_label").replace_strict(GAINS, return_dtype=pl.Float64).alias("gain")
    )
    stats = {
        "selection": {
            "locale": selection.esci_locale,
            "version": selection.esci_version,
            "split": selection.esci_split,
        },
        "examples_selected": count(con, "SELECT count(*) FROM esci_selected"),
        "products_selected": count(con, "SELECT count(DISTINCT product_id) FROM esci_selected"),
        "products_in_folder": good["node_id"].n_unique(),
        "judgements_in_folder": good.height,
        "queries_in_folder": good["query_id"].n_unique(),
        "rejected_by_reason": rejected,
    }
    con.execute("DROP TABLE esci_selected")
    con.unregister("folder_nodes")
    return good, stats


def product_coverage(
    path: str | Path,
    asins: list[str],
    locale: str = "us",
    con: duckdb.DuckDBPyConnection | None = None,
) -> dict:
    """How many products of an ESCI products file (one locale, or 'all') are in the folder."""
    path = Path(path)
    con = con or connect()
    _check_columns(con, path, PRODUCT_COLUMNS)
    con.register("folder_asins", pl.DataFrame({"asin": asins}).to_arrow())
    where = "" if locale == "all" else f"WHERE product_locale = {quote_literal(locale)}"
    sql = (
        f"SELECT count(DISTINCT product_id), count(DISTINCT product_id) FILTER "
        f"(WHERE product_id IN (SELECT asin FROM folder_asins)) "
        f"FROM read_parquet({quote_literal(str(path))}) {where}"
    )
    total, inside = con.execute(sql).fetchall()[0]
    con.unregister("folder_asins")
    return {"locale": locale, "esci_products": int(total), "in_folder": int(inside or 0)}


__all__ = ["EXAMPLE_COLUMNS", "EsciSelection", "GAINS", "product_coverage", "read_judgements"]
