-- Failed operator sign-ins, per (email, client address) and per client address, under a digest
-- of the key (never the email or address itself), shared by every node so that an attacker
-- spread over many nodes gets no more attempts than against one. The rules are in vellum-core's
-- sign_in_throttle; records idle for the failure window are deleted as attempts come in.
-- A small table local to the coordinator in an organization-sharded deployment.
create table sign_in_failures (
    key bytea primary key,
    count integer not null,
    in_flight integer not null,
    in_flight_until bigint not null,
    last bigint not null,
    locked_until bigint
);

create index sign_in_failures_by_last on sign_in_failures (last);
