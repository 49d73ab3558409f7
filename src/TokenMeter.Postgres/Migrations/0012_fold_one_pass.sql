-- TokenMeter 0012: a sum of bigints that stays a bigint, for the fold.
--
-- PostgreSQL's sum(bigint) returns numeric: every group carries a palloc'd 128-bit accumulator per summed column, and
-- each sum is converted back to bigint at the end. A fold sums seven token columns for every group of every grain
-- (tens of thousands of groups per fold), so those accumulators were a large share of its memory and server CPU
-- (measured with perf: int8_avg_accum, palloc0 and the page faults of the hash tables' memory, about a fifth of a fold).
-- This aggregate keeps the running sum as a plain bigint (int8pl, which raises an error on overflow like any bigint
-- addition; every rollup column it feeds is a bigint). Like sum, it is null over no rows (or only nulls). Nothing else
-- changes here: the fold's statement (in the store) now groups the unfolded rows once for every grain.
CREATE AGGREGATE {schema}.tokenmeter_sum(bigint) (
    SFUNC = int8pl,
    STYPE = bigint,
    COMBINEFUNC = int8pl,
    PARALLEL = SAFE
);
