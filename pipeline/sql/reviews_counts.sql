-- For the stats: how many staged good rows are distinct, and how many of those are not
-- verified purchases. Rows are keyed on the ids, time and rating plus a hash of the rest
-- (text included), so the set DuckDB holds stays small whatever the length of the texts.
SELECT count(*) AS distinct_rows,
       count(*) FILTER (WHERE NOT coalesce(verified, false)) AS unverified
FROM (
    SELECT DISTINCT user_id, asin, ts, rating, verified, hash(helpful_votes, title, text) AS h
    FROM staged
)
