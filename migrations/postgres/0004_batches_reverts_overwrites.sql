-- Section 7 of the contract: promotions made in one batch share a batch id; a
-- revert records the promotion it undid; an overwrite records that it deleted
-- the target's copy first (and so cannot be reverted).
ALTER TABLE promotions ADD COLUMN batch_id TEXT;
ALTER TABLE promotions ADD COLUMN revert_of BIGINT;
ALTER TABLE promotions ADD COLUMN overwrote BOOLEAN NOT NULL DEFAULT FALSE;

-- The history's batch filter and a batch revert find a batch's rows by id.
CREATE INDEX promotions_by_batch ON promotions (batch_id, id) WHERE batch_id IS NOT NULL;
