-- Canonical reviews from Amazon Reviews 2023 JSON lines (view `lines`, one JSON text per row).
-- Each line is parsed once into a struct of raw JSON values; fields are then cast one by one
-- so that a bad line is rejected with a reason instead of failing the whole file.
WITH parsed AS (
    SELECT
        line,
        CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' THEN json_transform(line, '{
            "user_id": "JSON", "parent_asin": "JSON", "asin": "JSON", "rating": "JSON",
            "timestamp": "JSON", "verified_purchase": "JSON", "helpful_vote": "JSON",
            "title": "JSON", "text": "JSON"}') END AS r
    FROM lines
    WHERE line IS NOT NULL AND trim(line) <> ''
), typed AS (
    SELECT
        line, r,
        r.user_id ->> '$' AS user_id,
        coalesce(r.parent_asin ->> '$', r.asin ->> '$') AS asin,
        TRY_CAST(r.rating AS DOUBLE) AS rating,
        TRY_CAST(r.timestamp AS BIGINT) AS ts,
        TRY_CAST(r.verified_purchase AS BOOLEAN) AS verified,
        TRY_CAST(r.helpful_vote AS BIGINT) AS helpful_votes,
        r.title ->> '$' AS title,
        r.text ->> '$' AS text
    FROM parsed
)
SELECT
    user_id, asin, rating, ts, verified, helpful_votes, title, text,
    CASE
        WHEN r IS NULL THEN 'bad_json'
        WHEN json_type(r.user_id) NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT') THEN 'wrong_type:user_id'
        WHEN coalesce(r.parent_asin, r.asin) IS NOT NULL
             AND json_type(coalesce(r.parent_asin, r.asin)) NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT')
            THEN 'wrong_type:asin'
        WHEN user_id IS NULL OR user_id = '' THEN 'missing_user'
        WHEN asin IS NULL OR asin = '' THEN 'missing_item'
        WHEN rating IS NULL AND r.rating IS NOT NULL AND json_type(r.rating) <> 'NULL'
            THEN 'wrong_type:rating'
        WHEN ts IS NULL AND r.timestamp IS NOT NULL AND json_type(r.timestamp) <> 'NULL'
            THEN 'wrong_type:timestamp'
    END AS reject_reason,
    line AS raw
FROM typed
