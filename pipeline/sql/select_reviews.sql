-- Up to $max_reviews review texts per node, best first: most helpful votes, then most recent,
-- then a stable tiebreak (user, text) so two runs pick and order the same reviews.
-- Empty or whitespace-only texts are skipped. Nodes come from the registered view `nodes`
-- (column asin); the reviews from the parquet file(s) at $reviews_path.
WITH candidates AS (
    SELECT
        r.asin,
        r.text,
        row_number() OVER (
            PARTITION BY r.asin
            ORDER BY
                coalesce(r.helpful_votes, 0) DESC,
                r.ts DESC NULLS LAST,
                r.user_id ASC NULLS LAST,
                r.text ASC
        ) AS rn
    FROM read_parquet($reviews_path) AS r
    SEMI JOIN nodes AS n ON n.asin = r.asin
    WHERE r.text IS NOT NULL AND trim(r.text) <> ''
)
SELECT
    asin,
    list(text ORDER BY rn) AS reviews,
    count(*) AS n_reviews
FROM candidates
WHERE rn <= $max_reviews
GROUP BY asin
ORDER BY asin
