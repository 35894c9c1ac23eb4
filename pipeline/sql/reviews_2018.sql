-- Canonical reviews from Amazon 2018 review lines (view `docs`, json_docs.sql). Same rules
-- as 2023 (ingest_macros.sql); `vote` is a string with thousands separators ("1,234"),
-- `unixReviewTime` is in seconds. `user_id` is read only to tell a 2023 line apart.
WITH parsed AS (
    SELECT
        line, doc, NOT ok AS repaired,
        CASE WHEN (ok OR json_valid(doc)) AND is_object_text(doc) THEN json_transform(doc, '{
            "reviewerID": "JSON", "asin": "JSON", "overall": "JSON", "unixReviewTime": "JSON",
            "verified": "JSON", "vote": "JSON", "summary": "JSON", "reviewText": "JSON",
            "user_id": "JSON"}') END AS r
    FROM docs
), typed AS (
    SELECT
        line, repaired, r,
        CASE WHEN r IS NOT NULL THEN json_keys(doc) END AS keys,
        r.reviewerID ->> '$' AS user_id,
        r.asin ->> '$' AS asin,
        TRY_CAST(r.overall AS DOUBLE) AS rating,
        TRY_CAST(r.unixReviewTime AS BIGINT) * 1000 AS ts,
        TRY_CAST(r.verified AS BOOLEAN) AS verified,
        coalesce(TRY_CAST(replace(r.vote ->> '$', ',', '') AS BIGINT), 0) AS helpful_votes,
        r.summary ->> '$' AS title,
        r.reviewText ->> '$' AS text
    FROM parsed
), checked AS (
    SELECT *, review_reject_reason(
        r, keys, r.reviewerID, r.asin, r.overall, r.unixReviewTime,
        r.user_id, user_id, asin, rating, ts) AS reject_reason
    FROM typed
)
SELECT
    user_id, asin, rating, ts, verified, helpful_votes, title, text, reject_reason,
    CASE WHEN reject_reason IS NOT NULL THEN line END AS raw,
    repaired AND reject_reason IS NULL AS repaired
FROM checked
