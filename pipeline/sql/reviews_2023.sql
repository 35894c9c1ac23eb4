-- Canonical reviews from Amazon Reviews 2023 JSON lines (view `docs`, json_docs.sql: one
-- JSON text per row).
-- Each line is parsed once into a struct of raw JSON values; fields are then cast one by one
-- so that a bad line is rejected with a reason (ingest_macros.sql) instead of failing the
-- whole file. `reviewerID` is read only to tell a 2018 line apart (`other_format`).
WITH parsed AS (
    SELECT
        line, doc, NOT ok AS repaired,
        CASE WHEN (ok OR json_valid(doc)) AND is_object_text(doc) THEN json_transform(doc, '{
            "user_id": "JSON", "parent_asin": "JSON", "asin": "JSON", "rating": "JSON",
            "timestamp": "JSON", "verified_purchase": "JSON", "helpful_vote": "JSON",
            "title": "JSON", "text": "JSON", "reviewerID": "JSON"}') END AS r
    FROM docs
), typed AS (
    SELECT
        line, repaired, r,
        CASE WHEN r IS NOT NULL THEN json_keys(doc) END AS keys,
        r.user_id ->> '$' AS user_id,
        coalesce(r.parent_asin ->> '$', r.asin ->> '$') AS asin,
        TRY_CAST(r.rating AS DOUBLE) AS rating,
        TRY_CAST(r.timestamp AS BIGINT) AS ts,
        TRY_CAST(r.verified_purchase AS BOOLEAN) AS verified,
        TRY_CAST(r.helpful_vote AS BIGINT) AS helpful_votes,
        r.title ->> '$' AS title,
        r.text ->> '$' AS text
    FROM parsed
), checked AS (
    SELECT *, review_reject_reason(
        r, keys, r.user_id, coalesce(r.parent_asin, r.asin), r.rating, r.timestamp,
        r.reviewerID, user_id, asin, rating, ts) AS reject_reason
    FROM typed
)
SELECT
    user_id, asin, rating, ts, verified, helpful_votes, title, text, reject_reason,
    CASE WHEN reject_reason IS NOT NULL THEN line END AS raw,
    repaired AND reject_reason IS NULL AS repaired
FROM checked
