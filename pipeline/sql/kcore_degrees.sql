-- Degrees of the current edge set `core` (i, j, w): both endpoints count.
CREATE OR REPLACE TEMP TABLE low AS
SELECT n FROM (SELECT i AS n FROM core UNION ALL SELECT j AS n FROM core)
GROUP BY n HAVING count(*) < $k;
