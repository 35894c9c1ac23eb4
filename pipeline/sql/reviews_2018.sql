-- Canonical reviews from Amazon 2018 review lines (view `lines`). Same rules as 2023;
-- `vote` is a string with thousands separators ("1,234"), `unixReviewTime` is in seconds.
WITH parsed AS (
    SELECT
        line,
        CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' THEN json_transform(line, '{
            "reviewerID": "JSON", "asin": "JSON", "overall": "JSON", "unixReviewTime": "JSON",
            "verified": "JSON", "vote": "JSON", "summary": "JSON", "reviewText": "JSON"}') END AS r
    FROM lines
    WHERE line IS NOT NULL AND trim(line) <> ''
), typed AS (
    SELECT
        line, r,
        r.reviewerID ->> '$' AS user_id,
        r.asin ->> '$' AS asin,
        TRY_CAST(r.overall AS DOUBLE) AS rating,
        TRY_CAST(r.unixReviewTime AS BIGINT) * 1000 AS ts,
        TRY_CAST(r.verified AS BOOLEAN) AS verified,
        coalesce(TRY_CAST(replace(r.vote ->> '$', ',', '') AS BIGINT), 0) AS helpful_votes,
        r.summary ->> '$' AS title,
        r.reviewText ->> '$' AS text
    FROM parsed
)
SELECT
    user_id, asin, rating, ts, verified, helpful_votes, title, text,
    CASE
        WHEN r IS NULL THEN 'bad_json'
        WHEN json_type(r.reviewerID) NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT') THEN 'wrong_type:user_id'
        WHEN r.asin IS NOT NULL AND json_type(r.asin) NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT')
            THEN 'wrong_type:asin'
        WHEN user_id IS NULL OR user_id = '' THEN 'missing_user'
        WHEN asin IS NULL OR asin = '' THEN 'missing_item'
        WHEN rating IS NULL AND r.overall IS NOT NULL AND json_type(r.overall) <> 'NULL'
            THEN 'wrong_type:rating'
        WHEN ts IS NULL AND r.unixReviewTime IS NOT NULL AND json_type(r.unixReviewTime) <> 'NULL'
            THEN 'wrong_type:timestamp'
    END AS reject_reason,
    line AS raw
FROM typed
