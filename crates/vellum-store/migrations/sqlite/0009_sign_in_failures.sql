-- Failed operator sign-ins, per (email, client address) and per client address, under a digest
-- of the key (never the email or address itself). The rules are in vellum-core's
-- sign_in_throttle; records idle for the failure window are deleted as attempts come in.
create table sign_in_failures (
    key blob primary key,
    count integer not null,
    in_flight integer not null,
    in_flight_until integer not null,
    last integer not null,
    locked_until integer
) without rowid;

create index sign_in_failures_by_last on sign_in_failures (last);
