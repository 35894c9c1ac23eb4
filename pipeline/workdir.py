"""The work-directory contract: every stage reads and writes these files.

A build of one category lives in one work directory. Stages are plain functions that read
the files of earlier stages and write their own, atomically (see ``pipeline.io.atomic_path``).
Schemas (parquet unless said otherwise):

ingest (pipeline.ingest)
  items.parquet        asin str, title str, description list<str>, features list<str>,
                       categories list<str> (taxonomy path, top level first), main_category str,
                       image_url str (best: hi_res, then large), store str
  reviews.parquet      user_id str, asin str, rating double, ts int64 (unix ms),
                       verified bool, helpful_votes int64, title str, text str
  rejects.jsonl        a sample of rejected input lines with file, line and reason
clean (pipeline.clean)
  items_clean.parquet  items with a usable title, description and image url
  item_rejects.parquet asin str, reason str
graph (pipeline.graph)
  bipartite.parquet    user_id str, asin str (distinct purchases)
  edges.parquet        src_asin str, dst_asin str, weight int64  (src_asin < dst_asin)
  nodes.parquet        asin str, degree int64
  stats.json           counters of every stage so far
images (pipeline.images)
  images.parquet       asin, url, fetch_url, status, error, http_status, bytes, width,
                       height, orig_width, orig_height, sha256, dhash (sorted by asin)
  image_store/         normalised RGB JPEGs, content addressed: <sha256[:2]>/<sha256>.jpg
  images_journal/      resume journal of the image stage (parquet parts), .images.lock
clip (pipeline.clip)
  clip/index.parquet   asin str, row int64 (row of the .npy files)
  clip/{image,title,description,combined}.npy   float32 [n, d], L2-normalised
  clip/scores.parquet  asin str, clip_t_title double, clip_t_desc double
filter (pipeline.filter)
  final/nodes.parquet, final/edges.parquet      the fixpoint graph (same schemas as above)
  final/filter_stats.json
classes (pipeline.classes)
  classes.parquet      asin str, class int64, class_name str
  node_categories.json {"<class index>": "<name>"}
relations (pipeline.relations)
  relations/edge_relations.parquet  src_asin, dst_asin, relation_id int64, relation_users int64
  relations/relations.json          see the published relations.json
  relations/user_clusters.parquet   user_id str, cluster int64
publish (pipeline.publish.assemble)
  publish/<slug>/      the assembled category folder, published by pipeline.publish.targets
.stamps/               per-stage cache keys and results (flows.cache)
shards/                intermediate files of the sharded stages (--shards N):
  graph-<N>/           partitioned projection (pipeline.graph_partitions): prepare.json,
                       item_ids.parquet, baskets-<p>.parquet, pairs-<p>/bucket=<b>/,
                       kept-<b>.parquet
  images-<i>-of-<N>/   one image shard's work directory
"""

from __future__ import annotations

from pathlib import Path

ITEMS = "items.parquet"
REVIEWS = "reviews.parquet"
REJECTS = "rejects.jsonl"
ITEMS_CLEAN = "items_clean.parquet"
ITEM_REJECTS = "item_rejects.parquet"
BIPARTITE = "bipartite.parquet"
EDGES = "edges.parquet"
NODES = "nodes.parquet"
STATS = "stats.json"
IMAGES = "images.parquet"
IMAGE_STORE = "image_store"
CLIP_DIR = "clip"
FINAL_DIR = "final"
CLASSES = "classes.parquet"
NODE_CATEGORIES = "node_categories.json"
RELATIONS_DIR = "relations"


def image_store_path(work: Path, sha256: str) -> Path:
    """Where the normalised JPEG with this content hash lives."""
    return Path(work) / IMAGE_STORE / sha256[:2] / f"{sha256}.jpg"
