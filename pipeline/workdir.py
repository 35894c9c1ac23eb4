"""The work-directory contract: every stage reads and writes these files.

A build of one category lives in one work directory. Stages are plain functions that read
the files of earlier stages and write their own, atomically (see ``pipeline.io.atomic_path``).
Schemas (parquet unless said otherwise):

fetch (pipeline.sources.fetch)
  sources.json         every input: its URI, the local copy's path, size and sha256
  downloads/           local copies of remote inputs (a flow's cache directory)
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
images (pipeline.images)
  images.parquet       asin, url, fetch_url, status, error, http_status, bytes, width,
                       height, orig_width, orig_height, sha256, dhash (sorted by asin)
  image_store/         normalised RGB JPEGs, content addressed: <sha256[:2]>/<sha256>.jpg
  images_journal/      resume journal of the image stage (parquet parts), .images.lock
clip (pipeline.clip)
  clip/index.parquet   asin str, row int64 (row of the .npy files)
  clip/{image,title,description,combined}.npy   float32 [n, d], L2-normalised
  clip/scores.parquet  asin str, clip_t_title double, clip_t_desc double
  clip/meta.json       model, checkpoint sha256, precision, settings
filter (pipeline.filter)
  final/nodes.parquet, final/edges.parquet      the fixpoint graph (same schemas as above)
  final/removed_nodes.parquet                   asin, round, reason
  final/filter_stats.json                       thresholds and counts of every round
classes (pipeline.classes)
  classes.parquet      asin str, class int64, class_name str
  node_categories.json {"<class index>": "<name>"}
relations (pipeline.relations)
  relations/edge_relations.parquet  src_asin, dst_asin, relation_id int64 (the top relation),
                                    relation_users int64, relation_ids list<int64>,
                                    relation_shares list<double> (the edge's co-buyers over
                                    the relations, largest share first, summing to 1)
  relations/relations.json          see the published relations.json
  relations/user_clusters.parquet   user_id str, cluster int64
publish (pipeline.publish.assemble)
  publish/<slug>/      the assembled category folder, published by pipeline.publish.targets
stats/<stage>.json     what each stage counted (its return value); merged by pipeline.stats
run_timings.json       the last flow run's stages: start (unix s), seconds, cached (in order)
.stamps/               per-stage cache keys and results (pipeline.stamps)
sample/                a generated sample category's files (source = "sample")
shards/                intermediate files of the sharded stages (--shards N):
  graph-<N>/           partitioned projection (pipeline.graph_partitions): prepare.json,
                       item_ids.parquet, baskets-<p>.parquet, pairs-<p>/bucket=<b>/,
                       kept-<b>.parquet
  images-<i>-of-<N>/   one image shard's work directory

Every name below is the one place a work file's name is written; stages, the stage table
(``pipeline.stages``) and the flows take them from here.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import StageError

SOURCES = "sources.json"
DOWNLOADS = "downloads"
ITEMS = "items.parquet"
SESSIONS = "sessions.parquet"  # Amazon-M2: the ordered sessions (ingest)
REVIEWS = "reviews.parquet"
REJECTS = "rejects.jsonl"
STAGING = ".staging"
DUCKDB_TMP = ".duckdb_tmp"
ITEMS_CLEAN = "items_clean.parquet"
ITEM_REJECTS = "item_rejects.parquet"
BIPARTITE = "bipartite.parquet"
EDGES = "edges.parquet"
NODES = "nodes.parquet"
STATS = "stats.json"  # the merged view of stats/ that ``acmmg graph`` leaves for its user
STATS_DIR = "stats"
RUN_TIMINGS = "run_timings.json"  # per-stage wall clock of the last flow run (bench_flow.py)
STAMPS = ".stamps"
BUILD_LOCK = ".build.lock"  # held by the one build (or command) using the work directory
SHARDS = "shards"
SAMPLE = "sample"
IMAGES = "images.parquet"
IMAGE_STORE = "image_store"
IMAGES_JOURNAL = "images_journal"
IMAGES_LOCK = ".images.lock"
CLIP_DIR = "clip"
CLIP_INDEX = f"{CLIP_DIR}/index.parquet"
CLIP_SCORES = f"{CLIP_DIR}/scores.parquet"
CLIP_META = f"{CLIP_DIR}/meta.json"
CLIP_KINDS = ("image", "title", "description", "combined")
FINAL_DIR = "final"
FINAL_NODES = f"{FINAL_DIR}/{NODES}"
FINAL_EDGES = f"{FINAL_DIR}/{EDGES}"
FINAL_REMOVED = f"{FINAL_DIR}/removed_nodes.parquet"
FILTER_STATS = f"{FINAL_DIR}/filter_stats.json"
CLASSES = "classes.parquet"
NODE_CATEGORIES = "node_categories.json"
RELATIONS_DIR = "relations"
EDGE_RELATIONS = f"{RELATIONS_DIR}/edge_relations.parquet"
RELATIONS_JSON = f"{RELATIONS_DIR}/relations.json"
USER_CLUSTERS = f"{RELATIONS_DIR}/user_clusters.parquet"
PUBLISH_DIR = "publish"
MANIFEST = "manifest.json"  # of an assembled (and published) category folder


def clip_array(kind: str) -> str:
    """The .npy file of one embedding kind (image, title, description, combined)."""
    return f"{CLIP_DIR}/{kind}.npy"


def image_store_path(work: Path, sha256: str) -> Path:
    """Where the normalised JPEG with this content hash lives."""
    return Path(work) / IMAGE_STORE / sha256[:2] / f"{sha256}.jpg"


def stats_file(work: Path, stage: str) -> Path:
    return Path(work) / STATS_DIR / f"{stage}.json"


def publish_folder(work: Path, category: str) -> Path:
    """Where the assemble stage writes the category folder that publish uploads."""
    return Path(work) / PUBLISH_DIR / category


def image_shard_dir(work: Path, shard: int, shards: int) -> Path:
    """The work directory of one image shard."""
    return Path(work) / SHARDS / f"images-{shard:03d}-of-{shards:03d}"


def graph_partition_dir(work: Path, partitions: int) -> Path:
    """Where the partitioned graph build keeps its intermediate files."""
    return Path(work) / SHARDS / f"graph-{partitions:03d}"


# ----------------------------------------------------------------------------- the rules
# One rule each, used by every stage that needs it.


def items(work: Path) -> Path:
    """The item table the later stages read: the cleaned items when the clean stage ran, else
    the ingested ones (``acmmg images --meta`` on a graph built without metadata)."""
    work = Path(work)
    for name in (ITEMS_CLEAN, ITEMS):
        if (work / name).exists():
            return work / name
    raise StageError(f"{work}: neither {ITEMS_CLEAN} nor {ITEMS} exists (run ingest with metadata)")


def items_inputs(work: Path) -> list[Path]:
    """What a stage that reads ``items(work)`` depends on (for its cache key)."""
    work = Path(work)
    clean = work / ITEMS_CLEAN
    return [clean] if clean.exists() else [work / ITEMS]


def final_graph(work: Path) -> tuple[Path, Path]:
    """(nodes, edges) of the final graph: the filter fixpoint's when it ran, else the graph's."""
    work = Path(work)
    if (work / FINAL_NODES).exists():
        return work / FINAL_NODES, work / FINAL_EDGES
    return work / NODES, work / EDGES


def require(path: Path, what: str) -> Path:
    """``path``, or a StageError naming what is missing and which stage makes it."""
    if not Path(path).exists():
        raise StageError(f"missing {what}: {path}")
    return Path(path)
