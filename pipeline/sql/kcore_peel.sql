-- One peeling round of the k-core: drop every edge that touches a node of degree < k.
-- Repeated until no node is below k.
DELETE FROM core WHERE i IN (SELECT n FROM low) OR j IN (SELECT n FROM low);
