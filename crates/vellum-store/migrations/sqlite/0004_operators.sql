-- Operators of the dashboard. `password_hash` is an argon2id PHC string; emails are stored
-- lower-cased, so the unique index makes sign-in case-insensitive.
create table operators (
    id blob primary key not null,
    email text not null unique,
    password_hash text not null,
    created_at integer not null,
    updated_at integer not null
) strict, without rowid;

-- Signed-in browser sessions, under the SHA-256 of their cookie token (never the token).
create table operator_sessions (
    token_hash blob primary key not null,
    operator_id blob not null references operators (id) on delete cascade,
    created_at integer not null,
    expires_at integer not null
) strict, without rowid;

create index operator_sessions_operator on operator_sessions (operator_id);
create index operator_sessions_expiry on operator_sessions (expires_at);
