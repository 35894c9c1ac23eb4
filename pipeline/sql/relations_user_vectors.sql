-- Every clustered user's share vector, and the distinct vectors with how many users hold
-- each: numpy then holds only the distinct vectors, never one row per user.
-- View expected: counted(user_id, col) (one row per purchase that counts; see
-- relations_user_classes.sql).
-- A vector is the list of (col, share) of the columns the user bought, share = n / total as
-- a double: correctly rounded, so users with proportional counts get the same vector, bit
-- for bit (as numpy's x / x.sum() gives them).
CREATE OR REPLACE TEMP TABLE user_vectors AS
WITH counts AS (
    SELECT user_id, col, count(*) AS n FROM counted GROUP BY user_id, col
)
SELECT
    user_id,
    list(struct_pack(col := col, share := n::DOUBLE / total::DOUBLE) ORDER BY col) AS vec
FROM (SELECT user_id, col, n, sum(n) OVER (PARTITION BY user_id) AS total FROM counts)
GROUP BY user_id;

CREATE OR REPLACE TEMP TABLE vectors AS
SELECT (row_number() OVER (ORDER BY vec) - 1)::BIGINT AS vid, vec, count(*)::BIGINT AS users
FROM user_vectors
GROUP BY vec;

CREATE OR REPLACE TEMP TABLE user_vid AS
SELECT u.user_id, v.vid
FROM user_vectors AS u
JOIN vectors AS v ON v.vec = u.vec;

DROP TABLE user_vectors;
