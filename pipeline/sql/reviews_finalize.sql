-- From the staged good rows: drop exact duplicates, apply --verified-only, then keep each
-- (user, item) once, its earliest review (ties broken on the row's content, so the choice is
-- deterministic whatever order the files were read in).
CREATE OR REPLACE TABLE reviews AS
WITH distinct_rows AS (
    SELECT DISTINCT user_id, asin, rating, ts, verified, helpful_votes, title, text
    FROM staged
    WHERE NOT $verified_only OR verified
)
SELECT user_id, asin, rating, ts, verified, helpful_votes, title, text
FROM distinct_rows
QUALIFY row_number() OVER (
    PARTITION BY user_id, asin
    ORDER BY ts ASC NULLS LAST, rating, helpful_votes, title, text
) = 1
