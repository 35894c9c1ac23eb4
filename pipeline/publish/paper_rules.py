"""The card's "Faithful to the papers" table: the dataset side of SLIP (Sec. 5, Table 1), the
ACMMG card and RCML (App. A.2), rule by rule, beside what this build did and whether that is
the same, configurable or deliberately different (and why). The training side is stated the
same way in pipeline/training/README.md."""

from __future__ import annotations

from typing import Any

from pipeline.publish.card_data import (
    CardData,
    cell,
    clip_t_cut,
    images_text,
    model_name,
    vocabulary_text,
)


def _same(value: Any, paper: Any, name: str) -> str:
    """ "same" when the build used the paper's value, else which setting differs."""
    if value is None:
        return f"not recorded (setting `{name}`)"
    if value == paper:
        return f"same (setting `{name}`)"
    return f"configured differently: `{name}` = {cell(value)}"


def _used(data: CardData, name: str) -> Any:
    """The value a stage used: its own record (the graph stage records k and
    min_copurchase), else the build's recorded setting; None when neither has it."""
    value = data.build_stats.get(name)
    return value if value is not None else data.params.get(name)


def paper_rules(data: CardData) -> list[tuple[str, str, str, str]]:
    """(rule, what the paper says, what this build did, same / configurable / different and
    why): the dataset side of SLIP (Sec. 5, Table 1), the ACMMG card and RCML (App. A.2)."""
    pr = data.params
    ci = data.class_info or {}
    rel = (data.relations or {}).get("stats", {}) if data.relations else None
    vocabulary = vocabulary_text(data.relations)
    cut = clip_t_cut(data)
    level = ci.get("level")
    rows = [
        (
            "Co-purchase edges",
            "products co-purchased at least 3 times by different users (SLIP Sec. 5)",
            f"pairs bought by >= {_used(data, 'min_copurchase')} distinct users; "
            "weight = their number",
            _same(_used(data, "min_copurchase"), 3, "min_copurchase"),
        ),
        (
            "k-core",
            "k = 5, nodes with fewer than 5 connections removed recursively (SLIP Sec. 5)",
            f"k = {_used(data, 'k')}, recomputed after every filter until nothing changes",
            _same(_used(data, "k"), 5, "k"),
        ),
        (
            "Incomplete entries",
            "missing titles, inadequate descriptions, invalid images removed (Table 1 caption)",
            "items without a usable title, description or image URL dropped; images fetched, "
            "verified and decoded; placeholder images (one picture shared by many items) dropped",
            "same",
        ),
        (
            "CLIP-T filter",
            "CLIP-T scores 'filter low-quality pairs' (Table 1 caption); no threshold is given",
            (
                f"nodes whose CLIP-T on {cut['fields']} is below the larger of {cut['rule']} "
                "are dropped"
                if cut and cut["rule"]
                else "no CLIP-T cut"
            ),
            "the product's own rule, not the paper's (settings `min_clip_t`, "
            "`clip_t_percentile`, `clip_t_fields`); an uncut build is described below",
        ),
        (
            "Class level",
            "one taxonomy level per category 'to maintain diversity while achieving reasonable "
            "class balance' (ACMMG card)",
            ci.get("reason")
            or (f"level {level}, {'chosen automatically' if ci.get('automatic') else 'pinned'}")
            if level is not None
            else "as given by the classes stage",
            "configurable: `taxonomy_level` pinned per category in the registry, or auto "
            "(the highest-scoring level; candidates below)",
        ),
        (
            "Reviews",
            "up to 25 reviews per node (ACMMG card)",
            f"up to {pr.get('max_reviews')} per node, most helpful first, empty texts skipped",
            _same(pr.get("max_reviews"), 25, "max_reviews"),
        ),
        (
            "Images",
            "'high-resolution product images' (SLIP Sec. 5, ACMMG card)",
            images_text(data.images).split(": ", 1)[-1],
            "deliberately different: the source resolution up to a bound (setting `max_side`), "
            "so a folder stays downloadable; CLIP sees 224-448 px",
        ),
        (
            "Node splits",
            "60% / 10% / 30% train / validation / test (SLIP Sec. 6.1)",
            "/".join(str(round(100 * r)) for r in pr.get("split_ratios", []))
            + " train / val / test, by a seeded hash of the asin",
            _same(list(pr.get("split_ratios", [])), [0.6, 0.1, 0.3], "split_ratios"),
        ),
        (
            "CLIP embeddings",
            "image, title, description and combined embeddings, [num_nodes, 512] (ACMMG card)",
            model_name(data)
            + ", dimension "
            + ", ".join(sorted({str(d) for d in data.counts["embedding_dims"].values()})),
            "same layout; the model is a setting (`model`, `pretrained`)",
        ),
    ]
    if rel is not None:
        if vocabulary:
            what, verdict = f"users described over {vocabulary}", "same"
        elif level == 1:
            what = "users described over the classes (level 1, the first-level subcategories)"
            verdict = "same vocabulary; only purchases of the graph's products count"
        else:
            what = f"users described over the classes above (level {level})"
            verdict = "different: the card's classes, not the first-level subcategories"
        multi = "relation_ids" in data.edge_columns
        rows.append(
            (
                "Relations (RCML)",
                "users described by their purchase distribution over the category's "
                "first-level subcategories, clustered, each cluster described in words; an "
                "edge is related by its co-buyers' clusters (RCML App. A.2)",
                f"{what}, {rel.get('algorithm', 'kmeans')} with k = {rel.get('k', data.counts.get('relations'))}; each edge "
                "gets the cluster holding most of its co-buyers"
                + (" and the distribution over all of them" if multi else ""),
                verdict + (" (setting `relations_k`)" if "relations_k" in pr else ""),
            )
        )
    return [tuple(x.replace("|", "\\|") for x in row) for row in rows]
