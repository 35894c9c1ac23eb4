-- From the staged good rows: apply --verified-only, then keep each (user, item) once, its
-- earliest review (ties broken on the row's content, so the choice is deterministic whatever
-- order the files were read in). No DISTINCT over the text first: exact duplicates tie on
-- every column, so whichever of them the window picks, the kept row is the same.
CREATE OR REPLACE TABLE reviews AS
SELECT user_id, asin, rating, ts, verified, helpful_votes, title, text
FROM staged
WHERE NOT $verified_only OR verified
QUALIFY row_number() OVER (
    PARTITION BY user_id, asin
    ORDER BY ts ASC NULLS LAST, rating, helpful_votes, title, text, verified
) = 1
