"""Publishing to a Hugging Face dataset repo in a layout the Hub renders.

Repo layout (``hf://datasets/OWNER/NAME[/PREFIX]``)::

    README.md                    root card: YAML with one config per category (the Hub's
                                 viewer and ``datasets.load_dataset(repo, CATEGORY)``), an index
    acmmg-categories.json        what the root card is generated from (one entry per category)
    [PREFIX/]<category>/...      the category folder exactly as its manifest lists it
    [PREFIX/]<category>/viewer/{train,validation,test}.parquet
                                 node rows per split, derived from the folder at publish time
                                 (not in the manifest; downloads ignore them)

Versions are tags: each publish is one commit on ``main`` (every file of the version, the
deletion of files the previous version had and this one has not, the viewer files and the
root card), then a tag named by the version on that commit. Readers (``acmmg.transport.
HubSource``) take ``main`` (or the version's tag), resolve it to its commit once and read
every file there. Publishing the version ``main`` already has uploads nothing (the tag is
created if a killed publish left it out); a tag whose manifest differs is refused (versions are
immutable); the commit names its parent, so a concurrent publish makes the Hub refuse it.

``hub_yaml`` is the pure function behind the YAML: the category card (``pipeline.publish.card``)
can call it with ``viewer=False`` for the folder's own README.md.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from acmmg.layout import MANIFEST, MAX_MANIFEST_BYTES, parse_manifest
from acmmg.signing import MAX_SIGNATURE_BYTES, SIGNATURE
from acmmg.transport import HubSource, hf_endpoint, hf_repo, hf_token
from pipeline.errors import UserError

log = logging.getLogger(__name__)

ARXIV = "2511.03019"  # SLIP, which introduced the ACMMG layout
INDEX = "acmmg-categories.json"
VIEWER_DIR = "viewer"
HF_SPLITS = ("train", "validation", "test")  # from the node splits train / val / test
TASK_CATEGORIES = ["graph-ml", "image-classification", "text-classification"]
TAGS = ["graph", "multimodal", "co-purchase", "amazon", "clip", "dgl"]
# Dumps from the Amazon Reviews 2023 release are named after its Hub dataset.
AMAZON_2023 = ("amazon-reviews-2023", "amazon_reviews_2023", "mcauleylab")
AMAZON_2023_HUB = "McAuley-Lab/Amazon-Reviews-2023"


class HubPublishError(UserError):
    """The Hub repo holds something this publish must not overwrite."""


def _features(class_names: list[str]) -> list[dict]:
    """``dataset_info.features`` of the node rows, in the Hub's YAML form."""
    return [
        {"name": "node_id", "dtype": "int64"},
        {"name": "asin", "dtype": "string"},
        {"name": "title", "dtype": "string"},
        {"name": "desc", "list": "string"},
        {
            "name": "class",
            "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(class_names)}}},
        },
        {"name": "reviews", "list": "string"},
    ]


def _source_entries(manifest: dict) -> list[dict]:
    """The source dumps with their hashes, each labelled reviews / meta where known."""
    kinds = {
        uri: kind
        for kind, uris in (manifest.get("params", {}).get("sources") or {}).items()
        for uri in (uris if isinstance(uris, list) else [uris])
    }
    out = []
    for s in manifest.get("sources") or []:
        if isinstance(s, dict) and "uri" in s:
            entry = {k: s[k] for k in ("uri", "sha256", "size") if k in s}
            if s["uri"] in kinds:
                entry["kind"] = kinds[s["uri"]]
            out.append(entry)
    return out


def hub_yaml(
    manifest: dict,
    class_names: list[str],
    base: str = "",
    viewer: bool = True,
    default: bool = True,
) -> dict:
    """The Hugging Face card YAML of one category, as a dict (dump it with ``yaml.safe_dump``).

    ``manifest``: the category's manifest (or, before it exists, a dict with ``category``,
    ``counts`` (nodes, edges, train / val / test), ``params`` (license, sources) and
    ``sources`` (uri, sha256, size of each dump)). ``base``: where the category folder is in
    the repo (``"electronics/"``; ``""`` for the folder's own card). ``viewer``: the node config
    maps train / validation / test to the per-split files the Hub publisher derives
    (``viewer/<split>.parquet``); ``False`` points it at ``node_attributes/*.parquet``.
    """
    from pipeline.publish.card_data import size_category

    category = str(manifest.get("category") or "category")
    counts = manifest.get("counts") or {}
    params = manifest.get("params") or {}
    sources = _source_entries(manifest)
    uris = [s["uri"] for s in sources]
    known = any(any(k in u.lower() for k in AMAZON_2023) for u in uris)
    if viewer:
        node_files: Any = [
            {"split": s, "path": f"{base}{VIEWER_DIR}/{s}.parquet"} for s in HF_SPLITS
        ]
    else:
        node_files = f"{base}node_attributes/*.parquet"
    split_counts = {"train": "train", "validation": "val", "test": "test"}
    info: dict = {"config_name": category, "features": _features(class_names)}
    if viewer and all(split_counts[s] in counts for s in HF_SPLITS):
        info["splits"] = [
            {"name": s, "num_examples": int(counts[split_counts[s]])} for s in HF_SPLITS
        ]
    nodes_config: dict = {"config_name": category, "data_files": node_files}
    if default:
        nodes_config["default"] = True
    return {
        "license": params.get("license") or "cc-by-4.0",
        "pretty_name": f"ACMMG {category}: Amazon co-purchase multimodal graph",
        "language": ["en"],
        "arxiv": ARXIV,
        "task_categories": list(TASK_CATEGORIES),
        "tags": list(TAGS),
        "size_categories": [size_category(int(counts.get("nodes", 0)))],
        "source_datasets": [AMAZON_2023_HUB] if known else uris,
        "configs": [
            nodes_config,
            {"config_name": f"{category}-edges", "data_files": f"{base}edges.parquet"},
        ],
        "dataset_info": [info],
        "acmmg": {category: {"version": manifest.get("version"), "sources": sources}},
    }


def merge_yaml(entries: dict[str, dict]) -> dict:
    """One YAML for a repo holding several categories: their configs, features and sources
    side by side (sorted by category), the first category's config the default."""
    merged: dict = {}
    for i, key in enumerate(sorted(entries)):
        y = entries[key]
        if not merged:
            merged = {k: v for k, v in y.items() if k not in {"configs", "dataset_info", "acmmg"}}
            merged.update(configs=[], dataset_info=[], acmmg={}, source_datasets=[])
        for c in y["configs"]:
            c = {k: v for k, v in c.items() if k != "default"}
            if i == 0 and not merged["configs"]:
                c["default"] = True
            merged["configs"].append(c)
        merged["dataset_info"] += y["dataset_info"]
        merged["acmmg"].update(y["acmmg"])
        merged["source_datasets"] += [
            s for s in y["source_datasets"] if s not in merged["source_datasets"]
        ]
        merged["size_categories"] = max(merged["size_categories"], y["size_categories"])
    if len(entries) > 1:
        merged["pretty_name"] = "ACMMG: Amazon co-purchase multimodal graphs"
    return merged


def root_card(repo_id: str, index: dict[str, dict]) -> str:
    """The repo's README.md: the merged YAML, then an index of the categories."""
    import yaml

    header = yaml.safe_dump(
        merge_yaml({k: v["yaml"] for k, v in index.items()}), sort_keys=False, allow_unicode=True
    )
    lines = [
        "---",
        header.rstrip(),
        "---",
        "",
        "# ACMMG: Amazon co-purchase multimodal graphs",
        "",
        "Multimodal product co-purchase graphs of Amazon categories in the layout of the ACMMG "
        f"dataset (SLIP, arXiv:{ARXIV}). Each category is a folder with its own card; each "
        "published version of a category is a tag of this repo named by the version (a content "
        "hash of the category's files).",
        "",
        "| Category | Version | Nodes | Edges | Classes | Card |",
        "|---|---|---:|---:|---:|---|",
    ]
    for key in sorted(index):
        e = index[key]
        c = e.get("counts", {})
        lines.append(
            f"| {e['category']} | `{e['version']}` | {c.get('nodes', 0):,} | {c.get('edges', 0):,} "
            f"| {c.get('classes', 0):,} | [{key}/README.md]({key}/README.md) |"
        )
    first = index[sorted(index)[0]]
    lines += [
        "",
        "## Load",
        "",
        "```python",
        "from acmmg import load_category   # pip install acmmg-data",
        f'cat = load_category("hf://datasets/{repo_id}/{sorted(index)[0]}", '
        f'version="{first["version"]}")',
        "data = cat.to_pyg()   # or cat.to_dgl(), cat.to_hf(image=True)",
        "",
        "from datasets import load_dataset   # node rows per split, no graph",
        f'ds = load_dataset("{repo_id}", "{first["category"]}", revision="{first["version"]}")',
        "```",
        "",
        f"`<category>/{VIEWER_DIR}/` holds the node rows per split for the viewer and "
        "`load_dataset`; they are derived from the category folder, which its `manifest.json` "
        "lists with every file's sha256.",
        "",
    ]
    return "\n".join(lines)


def node_split_tables(folder: Path) -> dict[str, Any]:
    """``{"train" | "validation" | "test": pyarrow.Table}`` of the folder's node rows."""
    import numpy as np

    from acmmg.category import Category

    cat = Category(folder)
    nodes = cat.nodes.select(["node_id", "asin", "title", "desc", "class", "reviews"])
    splits = {"train": "train", "validation": "val", "test": "test"}
    return {hf: nodes.take(np.flatnonzero(cat.masks[s])) for hf, s in splits.items()}


def publish_hub(
    folder: Path,
    category: str,
    target: str,
    manifest: dict,
    raw: bytes,
    api: Any = None,
    signature: bytes | None = None,
) -> str:
    """Publish the checked ``folder`` to the Hub repo ``target``; return the version.

    ``signature``: the detached ``manifest.json.sig`` to publish beside the manifest. An error
    of the Hub (refused, unreachable; a commit whose parent is no longer ``main`` because
    another publish landed) is a one-line ``HubPublishError``; nothing is half-published."""
    import httpx

    try:
        return _publish_hub(folder, category, target, manifest, raw, api, signature)
    except (OSError, httpx.HTTPError) as e:  # HfHubHTTPError is an OSError
        reason = " ".join(str(e).split())[:300]
        raise HubPublishError(f"cannot publish {category} to {target}: {reason}") from None


def _publish_hub(
    folder: Path,
    category: str,
    target: str,
    manifest: dict,
    raw: bytes,
    api: Any,
    signature: bytes | None,
) -> str:
    import pyarrow.parquet as pq
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    repo_id, prefix = hf_repo(target)  # type: ignore[misc]
    key = f"{prefix.strip('/')}/{category}".lstrip("/")
    version = manifest["version"]
    api = api or HfApi(endpoint=hf_endpoint(), token=hf_token())
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    reader = HubSource(f"hf://datasets/{repo_id}", endpoint=api.endpoint, token=api.token)

    def manifest_at(sha: str | None) -> bytes | None:
        return reader.at(sha).read(f"{key}/{MANIFEST}", MAX_MANIFEST_BYTES) if sha else None

    tag, main = reader.commit_of(version), reader.commit_of("main")
    if tag is not None and manifest_at(tag) != raw:
        raise HubPublishError(
            f"{target}: tag {version} exists with another manifest for {category}; versions "
            "are immutable"
        )
    current = manifest_at(main)
    signed = signature is None or (
        main is not None
        and reader.at(main).read(f"{key}/{SIGNATURE}", MAX_SIGNATURE_BYTES) == signature
    )
    if current == raw and signed:
        log.info("%s %s is already on main of %s; nothing uploaded", category, version, repo_id)
        if tag is None:
            api.create_tag(repo_id, tag=version, revision=main, repo_type="dataset")
        return version

    old = parse_manifest(current, f"{target} {key}")["files"] if current else {}
    index_raw = reader.at(main).read(INDEX, MAX_MANIFEST_BYTES) if main else None
    index = json.loads(index_raw) if index_raw else {}
    class_names = [
        v for _, v in sorted(json.loads((folder / "node_categories.json").read_text()).items(),
                             key=lambda kv: int(kv[0]))
    ]  # fmt: skip
    index[key] = {
        "category": category,
        "version": version,
        "counts": manifest.get("counts", {}),
        "yaml": hub_yaml(manifest, class_names, base=f"{key}/"),
    }
    files = manifest["files"]
    with tempfile.TemporaryDirectory(prefix="acmmg-hub-") as tmp:
        ops: list[Any] = [
            CommitOperationAdd(f"{key}/{rel}", str(folder / rel)) for rel in sorted(files)
        ]
        ops.append(CommitOperationAdd(f"{key}/{MANIFEST}", str(folder / MANIFEST)))
        if signature is not None:
            ops.append(CommitOperationAdd(f"{key}/{SIGNATURE}", signature))
        for split, table in node_split_tables(folder).items():
            path = Path(tmp) / f"{split}.parquet"
            pq.write_table(table, path)
            ops.append(CommitOperationAdd(f"{key}/{VIEWER_DIR}/{split}.parquet", str(path)))
        ops += [CommitOperationDelete(f"{key}/{rel}") for rel in sorted(set(old) - set(files))]
        ops.append(CommitOperationAdd("README.md", root_card(repo_id, index).encode()))
        ops.append(
            CommitOperationAdd(INDEX, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
        )
        info = api.create_commit(
            repo_id,
            operations=ops,
            repo_type="dataset",
            commit_message=f"Publish {category} {version}",
            parent_commit=main,
        )
    if tag is None:
        api.create_tag(repo_id, tag=version, revision=info.oid, repo_type="dataset")
    log.info("published %s %s to %s (commit %s)", category, version, repo_id, info.oid)
    return version
