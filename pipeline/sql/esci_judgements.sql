-- The ESCI judgements (shopping_queries_dataset_examples.parquet at $path) of one selection,
-- joined to the products of a folder (table `folder_nodes`: asin, node_id; node_id NULL for
-- a product not in the folder). Selection: $locale (product_locale, or 'all'), $version
-- ('small': small_version = 1, the Task 1 set; 'large'; 'all') and $split ('test',
-- 'train', 'all'). A judgement of a folder product is rejected for a label outside E, S, C,
-- I, an empty query, or a (query, product) judged twice (the first example_id is kept).
CREATE OR REPLACE TEMP TABLE esci_selected AS
WITH selected AS (
    SELECT e.example_id, e.query_id, e.query, e.product_id, f.node_id,
           upper(trim(e.esci_label)) AS esci_label
    FROM read_parquet($path) AS e
    LEFT JOIN folder_nodes AS f ON f.asin = e.product_id
    WHERE ($locale = 'all' OR e.product_locale = $locale)
      AND ($version = 'all'
           OR ($version = 'small' AND CAST(e.small_version AS INTEGER) = 1)
           OR ($version = 'large' AND CAST(e.large_version AS INTEGER) = 1))
      AND ($split = 'all' OR e.split = $split)
)
SELECT
    *,
    CASE
        WHEN node_id IS NULL THEN NULL
        WHEN esci_label IS NULL OR esci_label NOT IN ('E', 'S', 'C', 'I') THEN 'bad_label'
        WHEN query IS NULL OR trim(query) = '' THEN 'missing_query'
        WHEN row_number() OVER (
            PARTITION BY query_id, product_id, node_id IS NULL ORDER BY example_id
        ) > 1 THEN 'duplicate_judgement'
    END AS reject_reason
FROM selected
