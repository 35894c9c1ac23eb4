"""Export a published category folder in the layout of SQID (the image-enriched ESCI set,
../shared/seeds/001_6faff9b5348246a3.txt).

Files written to OUT:

- ``product_image_urls.csv``: ``product_id,image_url``, one row per node with a known image
  URL, in node order;
- ``product_features.parquet``: ``product_id``, ``clip_image_features`` and
  ``clip_text_features`` (fixed-size float32 lists), row i = node i, copied from the
  published embeddings. The text features are the *title* embeddings: SQID embeds "the
  query text and product title" with one CLIP model. Ours are L2-normalised (SQID's are raw
  ``get_image_features`` outputs; cosine rankings are the same). A text-only folder has no
  ``clip_image_features`` column.
- ``query_features.parquet`` (with ``queries``, an ESCI examples file): ``query_id``,
  ``query``, ``clip_text_features`` for every selected query with a judged product in the
  folder, embedded with the folder's own model (pipeline.published), sorted by query_id;
- ``export.json``: the folder (category, version), the model and its check, the counts.

Image URLs: a node attribute ``image_url`` when the folder has one; else the build's
``WORK/images.parquet`` (the URL each image was fetched from), given as ``work``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline import workdir
from pipeline.errors import UserError
from pipeline.io import atomic_path, write_json
from pipeline.published import (
    FolderModelParams,
    load_embeds,
    load_folder_model,
    read_manifest,
    read_nodes,
    resolve_published,
)
from pipeline.sources.esci import EsciSelection, product_coverage, read_judgements

log = logging.getLogger(__name__)

IMAGE_URLS = "product_image_urls.csv"
PRODUCT_FEATURES = "product_features.parquet"
QUERY_FEATURES = "query_features.parquet"
EXPORT_JSON = "export.json"


def image_urls(folder: Path, nodes: pl.DataFrame, work: Path | None) -> pl.Series | None:
    """The image URL of every node (null where unknown), or None without any source."""
    if "image_url" in nodes.columns:
        return nodes["image_url"]
    if work is None:
        return None
    path = Path(work) / workdir.IMAGES
    if not path.exists():
        raise UserError(f"--work {work}: {path} is missing (not the build's work dir?)")
    urls = pl.read_parquet(path, columns=["asin", "url"]).unique("asin", keep="first")
    return nodes.select("asin").join(urls, on="asin", how="left", maintain_order="left")["url"]


def features_column(arr: np.ndarray) -> pa.FixedSizeListArray:
    """float32 [n, d] as a fixed-size-list column of d floats."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])


def write_table(table: pa.Table, dest: Path) -> None:
    from pipeline.publish.assemble import write_parquet  # fixed settings: same bytes

    with atomic_path(dest) as tmp:
        write_parquet(table, tmp)


def _write_urls(dest: Path, asins: list[str], urls: list[str | None]) -> int:
    rows = [(a, u) for a, u in zip(asins, urls, strict=True) if u]
    with atomic_path(dest) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["product_id", "image_url"])
        w.writerows(rows)
    return len(rows)


def export_sqid(
    folder: str | Path,
    out: str | Path,
    queries: str | Path | None = None,
    products: str | Path | None = None,
    selection: EsciSelection = EsciSelection(),
    model: FolderModelParams = FolderModelParams(),
) -> dict:
    """Write the SQID files of a published folder into ``out``; returns export.json's
    content. ``products`` (ESCI's products file) only adds its coverage to the counts."""
    folder, out = resolve_published(folder), Path(out)
    manifest = read_manifest(folder)
    nodes = read_nodes(folder, ("asin", "title", "image_url"))
    asins = nodes["asin"].to_list()
    n = nodes.height
    image = load_embeds(folder, "image", n)
    title = load_embeds(folder, "title", n)
    if title is None:
        raise UserError(f"{folder}/embeddings/title_embeds.npy is missing")
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "folder": {"category": manifest.get("category"), "version": manifest.get("version")},
        "nodes": n,
        "text_features": "title",
        "files": [],
    }

    urls = image_urls(folder, nodes, model.work)
    if urls is None and image is not None:
        raise UserError(
            f"{folder} has no image URLs (no image_url node attribute): pass --work with the "
            "build's work directory (its images.parquet has them)"
        )
    if urls is not None:
        summary["image_urls"] = _write_urls(out / IMAGE_URLS, asins, urls.to_list())
        summary["files"].append(IMAGE_URLS)
    else:
        summary["image_urls"] = None  # a text-only folder: no images, no URLs
        (out / IMAGE_URLS).unlink(missing_ok=True)

    columns = {"product_id": pa.array(asins, pa.string())}
    if image is not None:
        columns["clip_image_features"] = features_column(image)
    columns["clip_text_features"] = features_column(title)
    write_table(pa.table(columns), out / PRODUCT_FEATURES)
    summary["files"].append(PRODUCT_FEATURES)
    summary["embed_dim"] = int(title.shape[1])

    if products is not None:
        summary["esci_products"] = product_coverage(products, asins, selection.esci_locale)
    if queries is not None:
        judged, stats = read_judgements(queries, asins, selection)
        summary["esci"] = stats
        qs = judged.select("query_id", "query").unique("query_id", keep="first").sort("query_id")
        cm, spec = load_folder_model(folder, model)
        summary["model"] = spec
        from pipeline.clip import encode_texts

        emb = encode_texts(cm, qs["query"].to_list())
        table = pa.table(
            {
                "query_id": qs["query_id"].to_arrow(),
                "query": qs["query"].to_arrow().cast(pa.string()),
                "clip_text_features": features_column(emb.reshape(qs.height, cm.embed_dim)),
            }
        )
        write_table(table, out / QUERY_FEATURES)
        summary["queries"] = qs.height
        summary["files"].append(QUERY_FEATURES)
    else:
        (out / QUERY_FEATURES).unlink(missing_ok=True)  # never leave one of another run
    write_json(out / EXPORT_JSON, summary)
    log.info("export sqid: %d products, %s queries -> %s", n, summary.get("queries", 0), out)
    return summary


__all__ = ["export_sqid", "features_column", "image_urls"]
