-- A bare (user_id, item_id) purchase table, as made by shared/bench/gen_bipartite.py:
-- the graph stages alone. The ids keep their type here (staging 20 M integer ids is twice as
-- fast as staging their text); reviews_purchases.sql makes them text.
SELECT
    user_id,
    item_id AS asin,
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
