"""RCML relation texts: cluster users by what they buy, describe each cluster in words, and
give every co-purchase edge the relations of the users who bought both of its items.

Follows section 3.2 and appendix A.2 of the RCML paper: each user is described by the
distribution of all their purchases in the category over its first-level subcategories (the
``relation_level``, 1 by default; about ten per domain), users are clustered on these
distributions (KMeans, k=10 by default), and each cluster is summarised as a sentence such as
"Co-purchased by people who primarily buy Car Seats & Accessories, followed by Nursery and
Feeding, ...". Intra-sample pairs (image and text of the same product) share the fixed text
``INTRA_TEXT`` of appendix A.2. Every edge gets the distribution of its co-buyers over the
clusters (``relation_ids`` / ``relation_shares``, largest first) and its majority
(``relation_id``), so multi-relation training and relation-validity tasks are possible.

Modules: ``vocabulary`` (the subcategories, all purchases of the clustered users),
``vectors`` (their share vectors, built and deduplicated in DuckDB), ``clusters`` (KMeans,
canonical ids, distinct texts, silhouette), ``wording`` (the texts), ``votes`` (per-edge
relations from the co-buyers' clusters), ``stage`` (the stage function and its parameters).
DuckDB runs under a memory limit (2GB unless the resources say otherwise) and spills past
it; numpy holds only the distinct user vectors and a bounded silhouette sample.

Inputs (see pipeline.workdir; ``relation_inputs``): bipartite.parquet (who bought which graph
node), reviews.parquet and items.parquet (every purchase in the category and its category
path), final/edges.parquet and final/nodes.parquet (falling back to edges.parquet /
nodes.parquet when the filter stage has not run). Outputs under relations/:
edge_relations.parquet (src_asin, dst_asin, relation_id, relation_users, relation_ids
list<int64>, relation_shares list<float64>; one row per final edge, sorted), relations.json
(texts, cluster sizes and centroids, the vocabulary, the stats) and user_clusters.parquet
(user_id, cluster); the stats go to stats/relations.json.

Rules for the awkward cases:
- Users are clustered only when they bought at least two graph nodes (in the bipartite
  table). A user with one graph purchase cannot have co-purchased any edge; they are counted
  (``users_single_purchase``) and left out. A clustered user's vector counts every distinct
  item they reviewed in the category, graph node or not, usable item or not.
- The vocabulary is the subcategories at ``relation_level`` that the clustered users bought,
  named as the classes stage names a level (the shortest unique path suffix where a name
  repeats under another parent), sorted by name. Purchases of items without a subcategory
  there (a shorter path, an empty or "Other" label, no metadata) share one more column, last; texts never name it as a
  category ("Some / Many / Most of their purchases are outside these categories."), and
  relations.json gives it as ``outside_share``. A level no purchase reaches is a UserError.
- Users with identical share vectors are clustered as one weighted point (exactly the same
  KMeans objective, much smaller problem). The number of clusters actually used is
  ``min(k, distinct user vectors, vocabulary columns)``; a reduction is logged. More
  clusters than columns cannot get texts that tell them apart.
- MiniBatchKMeans replaces KMeans when the distinct vectors number more than
  ``minibatch_threshold``. Clustering runs single-threaded: multi-threaded reductions sum in
  a varying order, and same inputs must give byte-identical artifacts.
- Relation ids are canonical: 0 is the largest cluster (ties by centroid). Centroids are the
  exact weighted means of their members, recomputed after clustering.
- Texts: subcategories fall into tiers (dominant / secondary / moderate / low / minimal) by
  their share relative to the cluster's top share, moved one tier up or down when the
  cluster buys them at least twice / at most half as much as the average user
  (``relation_tiers``). The dominant one is always named first; whole tiers are named while
  12 names last, the rest are counted ("the other 18 categories").
- Texts of different relations always differ: clusters whose plain texts coincide are
  re-described with percentages; clusters still identical at percentage precision are
  merged (counted in ``merged_clusters``) since no words can tell them apart.
- An edge's relations: the clusters of its clustered co-buyers (users who bought both
  endpoints) with the share of co-buyers in each, largest share first, lowest id on ties;
  relation_id is the first (the majority), relation_users the number of co-buyers.
  Co-buyers are counted from each clustered user's sorted basket of graph items (item i with
  every later item, as the graph stage counts pairs), kept only where the pair is an edge.
  An edge with no clustered co-buyer (possible when an upstream filter, such as a cap on
  items per user, removed its buyers from the bipartite table) gets the one relation whose
  centroid is nearest to the edge's own mix (half each endpoint's column; lowest id on ties)
  with share 1 and relation_users = 0; such edges are counted in ``edges_fallback``.
- Silhouette is computed on a seeded sample of at most ``sample_silhouette`` users (null when
  the sample holds fewer than two clusters).
"""

from pipeline.relations.stage import RelationsParams, build_relations, relation_inputs
from pipeline.relations.wording import INTRA_TEXT, TIERS, relation_text, relation_tiers

__all__ = [
    "INTRA_TEXT",
    "TIERS",
    "RelationsParams",
    "build_relations",
    "relation_inputs",
    "relation_text",
    "relation_tiers",
]
