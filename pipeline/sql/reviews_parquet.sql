-- A bare (user_id, item_id) purchase table, as made by shared/bench/gen_bipartite.py:
-- the graph stages alone. Ids of any type become text.
SELECT
    CAST(user_id AS VARCHAR) AS user_id,
    CAST(item_id AS VARCHAR) AS asin,
    CAST(NULL AS DOUBLE) AS rating,
    CAST(NULL AS BIGINT) AS ts,
    CAST(NULL AS BOOLEAN) AS verified,
    CAST(0 AS BIGINT) AS helpful_votes,
    CAST(NULL AS VARCHAR) AS title,
    CAST(NULL AS VARCHAR) AS text,
    CASE
        WHEN user_id IS NULL THEN 'missing_user'
        WHEN item_id IS NULL THEN 'missing_item'
    END AS reject_reason,
    CAST(NULL AS VARCHAR) AS raw
FROM parquet_rows
