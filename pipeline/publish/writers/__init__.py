"""One writer per published file (the img2dataset writer idea).

Each writer is a small function of explicit inputs (tables, arrays, paths; never the work
directory) that writes one file, or one folder, of the category folder ``dest`` with fixed
settings, so the same inputs give the same bytes, and returns what the counts need.
``pipeline.publish.assemble`` reads the work directory (``pipeline.publish.inputs``) and
calls them in order, the manifest last.
"""

from pipeline.publish.writers.card import write_card
from pipeline.publish.writers.dgl import write_dgl
from pipeline.publish.writers.edge_splits import write_edge_splits
from pipeline.publish.writers.edges import write_edges
from pipeline.publish.writers.embeddings import write_embeddings
from pipeline.publish.writers.images import write_images_tar
from pipeline.publish.writers.manifest import write_manifest
from pipeline.publish.writers.node_attributes import write_node_attributes
from pipeline.publish.writers.node_categories import write_node_categories
from pipeline.publish.writers.parquet import write_parquet
from pipeline.publish.writers.relations import write_relations
from pipeline.publish.writers.splits import write_splits

__all__ = [
    "write_card",
    "write_dgl",
    "write_edge_splits",
    "write_edges",
    "write_embeddings",
    "write_images_tar",
    "write_manifest",
    "write_node_attributes",
    "write_node_categories",
    "write_parquet",
    "write_relations",
    "write_splits",
]
