-- Admin Portal links and the browser sessions opened from them (docs/portal.md). Only hashes of
-- link secrets and session tokens are kept. A link is spent when opened (`opened_at`); revoking
-- it (by the application's `external_user_id`) also deletes the sessions opened from it.
create table portal_links (
    id blob primary key,
    organization_seq integer not null references organizations (seq),
    intent text not null,              -- audit_logs | log_streams
    secret_hash blob not null unique,
    external_user_id text,
    return_url text,
    success_url text,
    it_contact_emails text not null,   -- JSON array of addresses
    created_at integer not null,
    expires_at integer not null,       -- when it can no longer be opened
    opened_at integer,
    revoked_at integer
) strict;
create index portal_links_by_user on portal_links (organization_seq, external_user_id);
create index portal_links_by_expiry on portal_links (expires_at);

create table portal_sessions (
    token_hash blob primary key,
    link_id blob not null references portal_links (id) on delete cascade,
    created_at integer not null,
    expires_at integer not null
) strict;
create index portal_sessions_by_link on portal_sessions (link_id);
