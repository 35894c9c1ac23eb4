-- Canonical reviews from the Amazon 2018 ratings-only CSV: item,user,rating,timestamp
-- (no header, timestamp in seconds). Fields come in as text so a bad value is a counted
-- rejection, not a failed read.
SELECT
    trim(user_id) AS user_id,
    trim(item) AS asin,
    TRY_CAST(rating AS DOUBLE) AS rating,
    TRY_CAST(ts AS BIGINT) * 1000 AS ts,
    CAST(NULL AS BOOLEAN) AS verified,
    CAST(0 AS BIGINT) AS helpful_votes,
    CAST(NULL AS VARCHAR) AS title,
    CAST(NULL AS VARCHAR) AS text,
    CASE
        WHEN user_id IS NULL OR trim(user_id) = '' THEN 'missing_user'
        WHEN item IS NULL OR trim(item) = '' THEN 'missing_item'
        WHEN TRY_CAST(rating AS DOUBLE) IS NULL AND coalesce(rating, '') <> '' THEN 'wrong_type:rating'
        WHEN NOT isfinite(TRY_CAST(rating AS DOUBLE)) THEN 'bad_rating'
        WHEN TRY_CAST(ts AS BIGINT) IS NULL AND coalesce(ts, '') <> '' THEN 'wrong_type:timestamp'
    END AS reject_reason,
    concat_ws(',', item, user_id, rating, ts) AS raw
FROM csv_rows
