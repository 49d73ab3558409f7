-- TokenMeter 0010: a fold writes one rollup fewer, and the rollups it updates leave room for the new row versions.
--
-- usage_user_endpoint_total (all-time sums per user, endpoint and model; 0004) goes. A user's detail sums the
-- user's usage_user_endpoint_month rows instead (one index range: at most a row per endpoint and model for each
-- month of the user's history). The fold upserted it as often as the month grain (a fold's pending rows fall in
-- one or two months, so nearly every month row it touched had its all-time twin): about a third of a fold.
--
-- Every row a fold touches is updated once per fold. A page filled to 70% took roughly half of those updates
-- on the same page (HOT: no index entry); the rest moved to another page with a new entry in every index of
-- the table. At 50% a page has room for a new version of each of its rows, and the previous fold's versions
-- are pruned as the page fills. Only pages written from now on are laid out this way.
DROP TABLE {schema}.usage_user_endpoint_total;

ALTER TABLE {schema}.usage_user_endpoint_month SET (fillfactor = 50);
ALTER TABLE {schema}.usage_user_day SET (fillfactor = 50);
ALTER TABLE {schema}.usage_user_month SET (fillfactor = 50);
ALTER TABLE {schema}.usage_user_total SET (fillfactor = 50);
ALTER TABLE {schema}.usage_endpoint_day SET (fillfactor = 50);
ALTER TABLE {schema}.usage_endpoint_month SET (fillfactor = 50);
