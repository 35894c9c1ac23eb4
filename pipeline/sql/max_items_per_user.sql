-- --max-items-per-user: drop users above N distinct items (bots, resellers), whose
-- purchases would otherwise dominate the pair instances (a user with d items makes d(d-1)/2).
CREATE OR REPLACE TEMP TABLE heavy_users AS
SELECT uid, len(items) AS d FROM baskets WHERE len(items) > $max_items;

DELETE FROM baskets WHERE len(items) > $max_items;
