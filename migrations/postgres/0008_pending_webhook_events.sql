-- The webhook events still to deliver, which `/metrics` counts at each scrape:
-- an index of those alone, so that the count does not read the whole outbox
-- history (delivered events are kept).
CREATE INDEX webhook_events_pending ON webhook_events (id) WHERE state = 'pending';
