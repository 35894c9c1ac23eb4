-- --max-items-per-user: drop users above N distinct items (bots, resellers), whose
-- purchases would otherwise dominate the pair instances (a user with d items makes d(d-1)/2).
CREATE OR REPLACE TEMP TABLE heavy_users AS
SELECT uid, count(*) AS d FROM bp GROUP BY uid HAVING count(*) > $max_items;

DELETE FROM bp WHERE uid IN (SELECT uid FROM heavy_users);
