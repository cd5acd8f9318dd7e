-- 0013_nodes: in cluster mode (ENVHUB_CLUSTER) every execution records the
-- node it was leased to; NULL when it ran on the server's own engine (or
-- never left the queue). The history filters by it.

ALTER TABLE executions ADD COLUMN node TEXT;
CREATE INDEX executions_node ON executions (node, seq) WHERE node IS NOT NULL;
