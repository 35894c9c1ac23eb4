"""SLIP Table 1 in the registry: the transcription, the tags and ``acmmg categories --json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.categories import load_registry
from pipeline.cli import main
from pipeline.errors import UserError
from tests.conftest import SHARED

SLIP = SHARED / "seeds" / "003_30947b22f1d7aea4.txt"
# The paper's row names -> registry slugs.
PAPER_ROWS = {
    "Video Games": "video-games",
    "Baby Products": "baby-products",
    "Office Products": "office-products",
    "Arts/Crafts/Sewing": "arts-crafts-and-sewing",
    "CDs & Vinyl": "cds-and-vinyl",
    "Grocery & Food": "grocery-and-gourmet-food",
    "Automotive": "automotive",
    "Toys & Games": "toys-and-games",
    "Movies/TV": "movies-and-tv",
    "Health/Household": "health-and-household",
    "Beauty & Care": "beauty-and-personal-care",
    "Electronics": "electronics",
    "Clothing/Shoes": "clothing-shoes-and-jewelry",
    "Books": "books",
}
_ROW = re.compile(
    r"^(?P<name>.+?) (?P<n>[\d,]+) (?P<e>[\d,]+) (?P<t>[\d.]+) ±\\pm (?P<ts>[\d.]+) "
    r"(?P<d>[\d.]+) ±\\pm (?P<ds>[\d.]+)$"
)


def test_electronics_and_books_as_the_issue_quotes_them(capsys) -> None:
    assert main(["categories", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["electronics"]["reference"] == {
        "nodes_k": 98,
        "edges_k": 2015,
        "clip_t_title": [31.4, 3.7],
        "clip_t_desc": [29.3, 3.9],
        "source": "SLIP Table 1",
    }
    assert out["books"]["reference"]["nodes_k"] == 194
    assert out["books"]["reference"]["clip_t_desc"] == [28.9, 4.7]
    assert out["pet-supplies"]["reference"] is None
    assert out["demo"]["reference"] is None


def test_acmmg_tag_is_exactly_table_1() -> None:
    reg = load_registry()
    tagged = {slug for slug, c in reg.items() if "acmmg" in c.papers}
    with_ref = {slug for slug, c in reg.items() if c.reference}
    assert tagged == with_ref == set(PAPER_ROWS.values())
    assert reg["pet-supplies"].papers == ["rcml"]


def test_transcription_matches_the_paper() -> None:
    if not SLIP.is_file():
        pytest.skip(f"the SLIP paper is not available: {SLIP} is absent")
    rows = {}
    for line in SLIP.read_text().splitlines():
        m = _ROW.match(line.strip())
        if m and m["name"] in PAPER_ROWS:
            rows[PAPER_ROWS[m["name"]]] = {
                "nodes_k": int(m["n"].replace(",", "")),
                "edges_k": int(m["e"].replace(",", "")),
                "clip_t_title": [float(m["t"]), float(m["ts"])],
                "clip_t_desc": [float(m["d"]), float(m["ds"])],
                "source": "SLIP Table 1",
            }
    assert len(rows) == 14
    reg = load_registry()
    assert {slug: reg[slug].reference for slug in rows} == rows


def test_malformed_reference_rows_are_refused(tmp_path: Path) -> None:
    base = (Path(__file__).resolve().parents[1] / "pipeline" / "categories.toml").read_text()
    for bad, message in [
        ('\n[reference.nowhere]\nnodes_k = 1\nedges_k = 1\nclip_t_title = [1.0, 1.0]\n'
         'clip_t_desc = [1.0, 1.0]\n', "unknown categories"),
        ("", None),
    ]:  # fmt: skip
        path = tmp_path / "categories.toml"
        path.write_text(base + bad)
        if message:
            with pytest.raises(UserError, match=message):
                load_registry(path)
        else:
            assert load_registry(path)["books"].reference
    broken = base.replace("books = { nodes_k = 194, edges_k = 3988,", "books = { nodes_k = 194,")
    path.write_text(broken)
    with pytest.raises(UserError, match=r"\[reference\] books .* needs exactly"):
        load_registry(path)
    path.write_text(base.replace("clip_t_title = [32.9, 5.0]", "clip_t_title = [32.9]"))
    with pytest.raises(UserError, match="mean, std"):
        load_registry(path)
