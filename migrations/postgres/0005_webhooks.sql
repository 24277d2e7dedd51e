-- Section 8 of the contract: webhooks, and the outbox of their events.
-- migrations/sqlite/0005_webhooks.sql holds the same for SQLite.

-- The secret signs every delivery, so it is kept as given: unlike an API key, it
-- must be used, not only compared. It never leaves the database but in a signature
-- (and once, in the answer that created it).
CREATE TABLE webhooks (
    id         BIGSERIAL PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    -- No feed filter: every promotion is an event.
    all_feeds  BOOLEAN NOT NULL,
    -- A paused webhook (false) still queues its events; they are sent on resuming.
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL
);

-- A webhook's feed filter, matched on the promotion's target. Names, not feed ids,
-- as in the history: a filter for a feed deleted later simply matches nothing.
CREATE TABLE webhook_feeds (
    webhook_id BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    feed       TEXT NOT NULL,
    feed_key   TEXT NOT NULL,
    PRIMARY KEY (webhook_id, feed_key)
);

-- The outbox: one event per promotion and matching webhook, written by the trigger
-- below in the promotion's own statement, so it commits or rolls back with it.
CREATE TABLE webhook_events (
    id              BIGSERIAL PRIMARY KEY,
    webhook_id      BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    promotion_id    BIGINT NOT NULL REFERENCES promotions (id),
    -- X-Promoter-Delivery: the same on every attempt, for receivers to deduplicate.
    delivery_id     TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- Milliseconds since 1970 by the database's clock (one clock for every
    -- process): when a pending event is due, or, while an attempt runs, when
    -- its claim lapses and another process may try again.
    next_attempt_at BIGINT NOT NULL DEFAULT 0
);
-- Finds a webhook's due events, and its rows when the webhook is deleted.
CREATE INDEX webhook_events_due ON webhook_events (webhook_id, state, next_attempt_at);

CREATE TABLE webhook_attempts (
    id           BIGSERIAL PRIMARY KEY,
    event_id     BIGINT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    webhook_id   BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    attempted_at TIMESTAMPTZ NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, id);
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (event_id);

-- Once per INSERT statement (a batch is one), so a promotion that no webhook wants
-- pays one lookup in a small table. `FOR KEY SHARE` makes a webhook deleted at the
-- same moment either wait for this promotion or be skipped by it, never turn the
-- promotion into a foreign-key error. The notification, sent at commit, wakes the
-- dispatchers of every server process. (gen_random_uuid needs PostgreSQL 13.)
CREATE FUNCTION promoter_webhook_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_events (webhook_id, promotion_id, delivery_id)
    SELECT w.id, p.id, gen_random_uuid()::text
    FROM promoted p CROSS JOIN webhooks w
    WHERE (w.all_feeds OR EXISTS (
          SELECT 1 FROM webhook_feeds f WHERE f.webhook_id = w.id AND f.feed_key = p.to_feed_key))
    ORDER BY p.id, w.id
    FOR KEY SHARE OF w;
    IF FOUND THEN
        PERFORM pg_notify('promoter_webhook_events', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER promotions_webhook_outbox AFTER INSERT ON promotions
    REFERENCING NEW TABLE AS promoted
    FOR EACH STATEMENT EXECUTE FUNCTION promoter_webhook_outbox();
