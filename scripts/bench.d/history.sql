-- One million history rows for scripts/bench, spread as a busy repository's
-- would be: 24 feeds, four feed types, 3,000 package names, 40 versions, a
-- scope on a quarter of the rows, one batch id per 1,000 rows, a second apart.
INSERT INTO promotions (from_feed_id, to_feed_id, from_feed, to_feed, from_feed_key,
    to_feed_key, package_type, group_name, name, version, group_key, name_key, version_key,
    comments, user_name, api_key_id, promoted_at, batch_id)
SELECT f, t, 'feed-' || f, 'feed-' || t, 'feed-' || f, 'feed-' || t,
    (ARRAY['npm', 'nuget', 'pypi', 'maven'])[1 + i % 4], g, n, v, g, n, v,
    NULL, 'loader', NULL, now() - make_interval(secs => 1000000 - i),
    '00000000-0000-4000-8000-' || lpad((i / 1000)::text, 12, '0')
FROM (SELECT i, 100 + i % 24 AS f, 100 + (i + 1 + i % 5) % 24 AS t,
        CASE WHEN i % 4 = 0 THEN '@scope' || (i % 50) ELSE '' END AS g,
        'pkg' || (i % 3000) AS n, '1.' || (i % 40) || '.0' AS v
      FROM generate_series(1, 1000000) AS s (i)) AS rows;
ANALYZE promotions;
