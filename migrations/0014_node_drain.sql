-- 0014_node_drain: cluster mode's drained nodes, so that a drain outlives a
-- restart of the server. A row while the node is drained; resuming deletes it.

CREATE TABLE node_drains (
    name       TEXT PRIMARY KEY,
    drained_by TEXT NOT NULL,
    drained_at INTEGER NOT NULL
);
