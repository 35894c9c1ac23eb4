-- Exact pruning before the projection, one round. An item bought by fewer than
-- `min_copurchase` users cannot be in any kept pair, and a user left with fewer than two items
-- makes no pair at all; dropping both changes no kept pair's weight and saves forming pair
-- instances that could never reach the threshold. The test is on `purchase_rows`, an upper
-- bound of the buyers, so nothing that could be kept is ever dropped. Further rounds (items
-- that fall below the threshold once those users are gone) removed almost nothing on the
-- benchmark sets and each cost a pass over the baskets, so there is one.
--
-- `part` is the user's partition, hash(user) mod `partitions`, for a projection split over a
-- cluster (pipeline/graph_partitions.py); a single-machine build passes 1.
CREATE OR REPLACE TEMP TABLE kept_baskets AS
WITH keep AS (
    -- keep.ok[iid + 1]: whether item iid can still reach min_copurchase buyers.
    SELECT list(purchase_rows >= $min_copurchase ORDER BY iid) AS ok FROM item_ids
)
SELECT part, items
FROM (
    SELECT hash(b.uid) % $partitions AS part, list_filter(b.items, lambda x: keep.ok[x + 1]) AS items
    FROM baskets b, keep
)
WHERE len(items) >= 2;
