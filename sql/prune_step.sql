-- One round of exact pruning before the projection. An item bought by fewer than
-- `min_copurchase` users cannot be in any kept pair, and a user with fewer than two items
-- makes no pair at all; dropping both changes no kept pair's weight, and saves forming the
-- pair instances that could never reach the threshold.
CREATE OR REPLACE TEMP TABLE bp_next AS
WITH items_ok AS (
    SELECT iid FROM bp GROUP BY iid HAVING count(*) >= $min_copurchase
), kept_items AS (
    SELECT bp.uid, bp.iid FROM bp SEMI JOIN items_ok USING (iid)
), users_ok AS (
    SELECT uid FROM kept_items GROUP BY uid HAVING count(*) >= 2
)
SELECT k.uid, k.iid FROM kept_items k SEMI JOIN users_ok USING (uid);
