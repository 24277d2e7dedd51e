-- Section 8 of the contract: webhooks, and the outbox of their events.
-- migrations/postgres/0005_webhooks.sql holds the same for PostgreSQL.

-- The secret signs every delivery, so it is kept as given: unlike an API key, it
-- must be used, not only compared. It never leaves the database but in a signature
-- (and once, in the answer that created it).
CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    -- No feed filter: every promotion is an event.
    all_feeds  BOOLEAN NOT NULL,
    -- A paused webhook (false) still queues its events; they are sent on resuming.
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TEXT NOT NULL
);

-- A webhook's feed filter, matched on the promotion's target. Names, not feed ids,
-- as in the history: a filter for a feed deleted later simply matches nothing.
CREATE TABLE webhook_feeds (
    webhook_id INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    feed       TEXT NOT NULL,
    feed_key   TEXT NOT NULL,
    PRIMARY KEY (webhook_id, feed_key)
);

-- The outbox: one event per promotion and matching webhook, written by the trigger
-- below in the promotion's own statement, so it commits or rolls back with it.
CREATE TABLE webhook_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    promotion_id    INTEGER NOT NULL REFERENCES promotions (id),
    -- X-Promoter-Delivery: the same on every attempt, for receivers to deduplicate.
    delivery_id     TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- Milliseconds since 1970 by the database's clock (one clock for every
    -- process): when a pending event is due, or, while an attempt runs, when
    -- its claim lapses and another process may try again.
    next_attempt_at INTEGER NOT NULL DEFAULT 0
);
-- Finds a webhook's due events, and its rows when the webhook is deleted.
CREATE INDEX webhook_events_due ON webhook_events (webhook_id, state, next_attempt_at);

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     INTEGER NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    webhook_id   INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, id);
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (event_id);

-- Per promotion row; SQLite runs one writer at a time, so no webhook can be
-- deleted between this lookup and the insert. The delivery id is a random
-- (version 4) UUID.
CREATE TRIGGER promotions_webhook_outbox AFTER INSERT ON promotions
BEGIN
    INSERT INTO webhook_events (webhook_id, promotion_id, delivery_id)
    SELECT w.id, NEW.id,
           lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
           || substr(lower(hex(randomblob(2))), 2) || '-'
           || substr('89ab', 1 + (random() & 3), 1)
           || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
    FROM webhooks w
    WHERE (w.all_feeds OR EXISTS (
          SELECT 1 FROM webhook_feeds f WHERE f.webhook_id = w.id AND f.feed_key = NEW.to_feed_key));
END;
