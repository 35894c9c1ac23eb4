"""The relation vocabulary: the subcategories users are described by (RCML appendix A.2).

RCML describes each user by the distribution of all their purchases over the category's
first-level subcategories (about ten per domain). The vocabulary is one taxonomy level
(``relation_level``, 1 by default), named as the classes stage names a level (a bare name,
or the shortest unique path suffix where the name repeats under another parent), over every
item the clustered users reviewed in the category: graph nodes or not, usable or not.
Purchases of items without a subcategory at that level (a shorter path, or no metadata)
share one extra column, ``outside``; texts never name it as a category.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from pipeline.classes import path_names
from pipeline.db import count
from pipeline.sql import execute_script


@dataclass(frozen=True)
class Vocabulary:
    level: int
    names: list[str]  # one per column, sorted; the outside column (when present) is last
    outside: int | None  # column of purchases without a subcategory at the level
    purchases: int  # purchases counted (distinct user, item)
    purchases_outside: int

    @property
    def columns(self) -> int:
        return len(self.names)


OUTSIDE_NAME = "(outside these categories)"


def build_vocabulary(con: duckdb.DuckDBPyConnection, level: int) -> Vocabulary:
    """Tables eligible, user_items, item_keys, vocab and the view ``counted`` (user_id, col)."""
    execute_script(con, "relations_vocabulary", {"level": level})
    keys = [
        tuple(r[0])
        for r in con.execute(
            "SELECT DISTINCT k.key FROM user_items AS u JOIN item_keys AS k ON k.asin = u.asin"
        ).fetchall()
    ]
    names = path_names(set(keys))
    ordered = sorted(keys, key=lambda k: names[k])
    purchases = count(con, "SELECT count(*) FROM user_items")
    outside = count(
        con, "SELECT count(*) FROM user_items AS u ANTI JOIN item_keys AS k ON k.asin = u.asin"
    )
    vocab = pl.DataFrame(
        {
            "key": [list(k) for k in ordered] + ([None] if outside else []),
            "col": list(range(len(ordered) + (1 if outside else 0))),
        },
        schema={"key": pl.List(pl.String), "col": pl.Int64},
    )
    con.register("vocab_df", vocab.to_arrow())
    con.execute("CREATE OR REPLACE TEMP TABLE vocab AS SELECT * FROM vocab_df")
    con.unregister("vocab_df")
    execute_script(con, "relations_counted")
    return Vocabulary(
        level=level,
        names=[names[k] for k in ordered] + ([OUTSIDE_NAME] if outside else []),
        outside=len(ordered) if outside else None,
        purchases=purchases,
        purchases_outside=outside,
    )
