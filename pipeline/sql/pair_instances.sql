-- Every pair instance (i, j), i < j, that the sorted baskets of `kept_baskets` form: item i
-- with each later item of its basket, so no self-join. A view, inlined into its consumers:
-- the thresholding window of project.sql and the partial counts of project_partial.sql.
CREATE OR REPLACE TEMP VIEW instances AS
WITH positions AS (
    SELECT items, unnest(items) AS i, generate_subscripts(items, 1) AS pos FROM kept_baskets
)
SELECT i, unnest(items[pos + 1:]) AS j FROM positions WHERE pos < len(items);
