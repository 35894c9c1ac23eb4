-- Table `reviews` from inputs that are bare (user, item) purchase tables: every column but
-- the ids is empty, so there is nothing to choose between a pair's rows, and one DISTINCT
-- does what the counts and the window of the general path (reviews_counts.sql,
-- reviews_finalize.sql) do, in one pass. The rows are the general path's, so is the file.
-- Ids of any type become text.
CREATE OR REPLACE TABLE reviews AS
SELECT CAST(user_id AS VARCHAR) AS user_id,
       CAST(asin AS VARCHAR) AS asin,
       CAST(NULL AS DOUBLE) AS rating,
       CAST(NULL AS BIGINT) AS ts,
       CAST(NULL AS BOOLEAN) AS verified,
       CAST(0 AS BIGINT) AS helpful_votes,
       CAST(NULL AS VARCHAR) AS title,
       CAST(NULL AS VARCHAR) AS text
FROM (SELECT DISTINCT user_id, asin FROM staged)
