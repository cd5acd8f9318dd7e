-- 0007_limits: each execution records the limits it ran with (JSON: timeout,
-- memory, cpu, pids, output_limit, workspace_size, network), from its
-- environment's policy as lowered by the request.

ALTER TABLE executions ADD COLUMN limits TEXT;
