-- 0005_policy: each environment version carries its policy (limits, network,
-- warm pool, recycling) as a JSON object; the environment keeps the policy of
-- the version in service (or the one requested while none is ready).

ALTER TABLE builds ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE environments ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
