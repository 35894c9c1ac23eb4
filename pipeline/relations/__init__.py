"""RCML relation texts: cluster users by what they buy, describe each cluster in words, and
give every co-purchase edge the relation of the users who bought both of its items.

Follows section 3.2 and appendix A.2 of the RCML paper: each user's purchases become a
distribution over the category's classes (the taxonomy level chosen by the classes stage),
users are clustered on these distributions (KMeans, k=10 by default), and each cluster is
summarised as a sentence such as "Co-purchased by people who primarily buy Car Seats &
Accessories, followed by Nursery and Feeding, ...". Intra-sample pairs (image and text of the
same product) share the fixed text ``INTRA_TEXT`` of appendix A.2.

Modules: ``vectors`` (users' share vectors, built and deduplicated in DuckDB), ``clusters``
(KMeans, canonical ids, distinct texts, silhouette), ``wording`` (the texts), ``votes``
(per-edge relations from the co-buyers' clusters), ``stage`` (the stage function and its
parameters). DuckDB runs under a memory limit (2GB unless the resources say otherwise) and
spills past it; numpy holds only the distinct user vectors and a bounded silhouette sample.

Inputs (see pipeline.workdir): bipartite.parquet, final/edges.parquet and final/nodes.parquet
(falling back to edges.parquet / nodes.parquet when the filter stage has not run) and
classes.parquet. Outputs under relations/: edge_relations.parquet (src_asin, dst_asin,
relation_id, relation_users; one row per final edge, sorted), relations.json and
user_clusters.parquet (user_id, cluster); a summary goes into stats.json under "relations".

Rules for the awkward cases:
- Users are clustered only when they bought at least two graph nodes. A user with one graph
  purchase cannot have co-purchased any edge; they are counted (``users_single_purchase``)
  and left out. Purchases of items that are not final nodes are ignored.
- Every final node must have a class; otherwise a UserError names how many lack one.
- Users with identical share vectors are clustered as one weighted point (exactly the same
  KMeans objective, much smaller problem). The number of clusters actually used is
  ``min(k, distinct user vectors, number of classes)``; a reduction is logged. More clusters
  than classes cannot get texts that tell them apart in class terms.
- MiniBatchKMeans replaces KMeans when the distinct vectors number more than
  ``minibatch_threshold``. Clustering runs single-threaded: multi-threaded reductions sum in
  a varying order, and same inputs must give byte-identical artifacts.
- Relation ids are canonical: 0 is the largest cluster (ties by centroid). Centroids are the
  exact weighted means of their members, recomputed after clustering.
- Texts: classes fall into tiers (dominant / secondary / moderate / low / minimal) by their
  share relative to the cluster's top share, moved one tier up or down when the cluster buys
  them at least twice / at most half as much as the average user (``relation_tiers``). The
  dominant class is always named first; at most 12 classes are named, the rest counted.
- Texts of different relations always differ: clusters whose plain texts coincide are
  re-described with percentages; clusters still identical at percentage precision are
  merged (counted in ``merged_clusters``) since no words can tell them apart.
- relation_id of an edge = the cluster holding most of its clustered co-buyers (users who
  bought both endpoints), lowest id on ties; relation_users = number of those co-buyers.
  Co-buyers are counted from each clustered user's sorted basket of graph items (item i with
  every later item, as the graph stage counts pairs), kept only where the pair is an edge.
  An edge with no clustered co-buyer (possible when an upstream filter, such as a cap on
  items per user, removed its buyers from the bipartite table) gets the relation whose
  centroid is nearest to the edge's own class-share vector (half of each endpoint's class;
  lowest id on ties) and relation_users = 0; such edges are counted in ``edges_fallback``.
- Silhouette is computed on a seeded sample of at most ``sample_silhouette`` users (null when
  the sample holds fewer than two clusters).
"""

from pipeline.relations.stage import RelationsParams, build_relations
from pipeline.relations.wording import INTRA_TEXT, TIERS, relation_text, relation_tiers

__all__ = [
    "INTRA_TEXT",
    "TIERS",
    "RelationsParams",
    "build_relations",
    "relation_text",
    "relation_tiers",
]
