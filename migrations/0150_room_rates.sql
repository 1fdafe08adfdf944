-- What the plan of a room check needs to rank rooms by what they would lose, and what it
-- reports when the rooms need more than the budgets give (docs/architecture.md, "The
-- plan").

ALTER TABLE chatwork_rooms
    -- The room's message rate as the checks observe it from `message_num`: a moving
    -- average (each sample weighted by the time it spans, a time constant of two rate
    -- windows) and the last sample alone, messages per minute. A check writes them only
    -- when `message_num` moved, on the row it writes anyway.
    ADD COLUMN rate_per_min         real NOT NULL DEFAULT 0 CHECK (rate_per_min >= 0),
    ADD COLUMN recent_rate_per_min  real NOT NULL DEFAULT 0 CHECK (recent_rate_per_min >= 0),
    -- `message_num`, and when, at the last sample.
    ADD COLUMN rate_base_num        integer CHECK (rate_base_num >= 0),
    ADD COLUMN rate_base_at         timestamptz,
    ADD CONSTRAINT chatwork_rooms_rate_base_together
        CHECK ((rate_base_num IS NULL) = (rate_base_at IS NULL));

ALTER TABLE room_checks
    -- More rooms needed a fetch than the check's share of the budget served: slow rooms
    -- gathered.
    ADD COLUMN tight              boolean NOT NULL DEFAULT false,
    -- Requests per rate window the rooms' observed rates need (each fetch bringing 100)
    -- plus the checks, against what the budgets give after the reserve.
    ADD COLUMN demand_per_window  real CHECK (demand_per_window >= 0),
    ADD COLUMN supply_per_window  integer CHECK (supply_per_window >= 0),
    -- Messages a minute the plan expects to be lost at these rates and this budget, and
    -- the rooms losing the most: `[{roomId, ratePerMin, lossPerMin, outrunsCheck}]`.
    ADD COLUMN loss_per_min       real NOT NULL DEFAULT 0 CHECK (loss_per_min >= 0),
    ADD COLUMN losing_rooms       jsonb NOT NULL DEFAULT '[]'::jsonb
                                  CHECK (jsonb_typeof(losing_rooms) = 'array'
                                         AND jsonb_array_length(losing_rooms) <= 20);
