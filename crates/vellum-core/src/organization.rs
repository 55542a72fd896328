//! Organizations: the customers of the application that sends events, each with its own trail.
//!
//! The rules here follow the WorkOS Organizations API where it documents them and choose a
//! lenient, stated limit where it does not (see `docs/organizations.md`).

use std::collections::BTreeMap;

use crate::id::{OrganizationDomainId, OrganizationId};
use crate::timestamp::Timestamp;
use crate::validation::{ValidationErrors, has_control_characters};

/// The longest organization name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// The longest external id accepted, in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 255;
/// The most metadata keys an organization carries.
pub const MAX_METADATA_KEYS: usize = 50;
/// The longest metadata key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 40;
/// The longest metadata value, in characters.
pub const MAX_METADATA_VALUE_CHARS: usize = 600;
/// The most domains an organization carries.
pub const MAX_DOMAINS: usize = 100;

/// The verification state of an organization's domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// Not verified (the default for domains given without a state).
    Pending,
    /// Verified by the application.
    Verified,
}

impl DomainState {
    /// Returns the wire and storage form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
        }
    }

    /// Parses the wire and storage form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "verified" => Some(Self::Verified),
            _ => None,
        }
    }
}

/// One domain of an organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganizationDomain {
    /// The domain's id.
    pub id: OrganizationDomainId,
    /// The domain name, lower case.
    pub domain: String,
    /// Whether the domain is verified.
    pub state: DomainState,
    /// When the domain was added.
    pub created_at: Timestamp,
    /// When the domain last changed.
    pub updated_at: Timestamp,
}

/// An organization as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    /// The organization's id.
    pub id: OrganizationId,
    /// A descriptive name; need not be unique.
    pub name: String,
    /// The application's own identifier for the organization; unique among live organizations.
    pub external_id: Option<String>,
    /// String key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// The organization's domains.
    pub domains: Vec<OrganizationDomain>,
    /// Kept for WorkOS compatibility; Vellum does nothing with it.
    pub stripe_customer_id: Option<String>,
    /// Kept for WorkOS compatibility; Vellum does nothing with it.
    pub allow_profiles_outside_organization: bool,
    /// When the organization was created.
    pub created_at: Timestamp,
    /// When the organization last changed.
    pub updated_at: Timestamp,
}

/// A requested domain, before it has an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInput {
    /// The domain name, lower case.
    pub domain: String,
    /// Its verification state.
    pub state: DomainState,
}

/// A validated request to create an organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrganization {
    /// See [`Organization::name`].
    pub name: String,
    /// See [`Organization::external_id`].
    pub external_id: Option<String>,
    /// See [`Organization::metadata`].
    pub metadata: BTreeMap<String, String>,
    /// See [`Organization::domains`].
    pub domains: Vec<DomainInput>,
    /// See [`Organization::allow_profiles_outside_organization`].
    pub allow_profiles_outside_organization: bool,
}

/// A validated change to an organization: `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new external id, or `Some(None)` to remove it.
    pub external_id: Option<Option<String>>,
    /// New metadata, replacing the old entirely.
    pub metadata: Option<BTreeMap<String, String>>,
    /// New domains, replacing the old; domains kept by name keep their ids.
    pub domains: Option<Vec<DomainInput>>,
    /// A new Stripe customer id, or `Some(None)` to remove it.
    pub stripe_customer_id: Option<Option<String>>,
    /// A new value for the compatibility flag.
    pub allow_profiles_outside_organization: Option<bool>,
}

impl Organization {
    /// Builds a new organization from a validated request.
    pub fn create(
        id: OrganizationId,
        request: NewOrganization,
        now: Timestamp,
        mut next_domain_id: impl FnMut() -> OrganizationDomainId,
    ) -> Self {
        let domains = request
            .domains
            .into_iter()
            .map(|input| OrganizationDomain {
                id: next_domain_id(),
                domain: input.domain,
                state: input.state,
                created_at: now,
                updated_at: now,
            })
            .collect();
        Self {
            id,
            name: request.name,
            external_id: request.external_id,
            metadata: request.metadata,
            domains,
            stripe_customer_id: None,
            allow_profiles_outside_organization: request.allow_profiles_outside_organization,
            created_at: now,
            updated_at: now,
        }
    }

    /// Applies a validated change. Domains that stay (by name) keep their id and creation time.
    pub fn apply(
        &mut self,
        update: OrganizationUpdate,
        now: Timestamp,
        mut next_domain_id: impl FnMut() -> OrganizationDomainId,
    ) {
        if let Some(name) = update.name {
            self.name = name;
        }
        if let Some(external_id) = update.external_id {
            self.external_id = external_id;
        }
        if let Some(metadata) = update.metadata {
            self.metadata = metadata;
        }
        if let Some(stripe_customer_id) = update.stripe_customer_id {
            self.stripe_customer_id = stripe_customer_id;
        }
        if let Some(allow) = update.allow_profiles_outside_organization {
            self.allow_profiles_outside_organization = allow;
        }
        if let Some(inputs) = update.domains {
            let mut domains = Vec::with_capacity(inputs.len());
            for input in inputs {
                let existing = self.domains.iter().find(|domain| domain.domain == input.domain);
                let domain = match existing {
                    Some(existing) if existing.state == input.state => existing.clone(),
                    Some(existing) => OrganizationDomain {
                        state: input.state,
                        updated_at: now,
                        ..existing.clone()
                    },
                    None => OrganizationDomain {
                        id: next_domain_id(),
                        domain: input.domain,
                        state: input.state,
                        created_at: now,
                        updated_at: now,
                    },
                };
                domains.push(domain);
            }
            self.domains = domains;
        }
        self.updated_at = now;
    }
}

/// Checks and normalises an organization name.
pub fn validate_name(name: &str, field: &str, errors: &mut ValidationErrors) -> Option<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        errors.push(field, "required", "name must not be empty");
        return None;
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        errors.push(
            field,
            "too_long",
            format!("name is at most {MAX_NAME_CHARS} characters long"),
        );
        return None;
    }
    if has_control_characters(trimmed) {
        errors.push(field, "invalid", "name must not contain control characters");
        return None;
    }
    Some(trimmed.to_owned())
}

/// Checks an optional identifier-like string (external id, Stripe customer id).
pub fn validate_identifier(value: &str, field: &str, errors: &mut ValidationErrors) -> Option<String> {
    if value.is_empty() {
        errors.push(
            field,
            "invalid",
            format!("{field} must not be empty; send null to remove it"),
        );
        return None;
    }
    if value.chars().count() > MAX_EXTERNAL_ID_CHARS {
        errors.push(
            field,
            "too_long",
            format!("{field} is at most {MAX_EXTERNAL_ID_CHARS} characters long"),
        );
        return None;
    }
    if has_control_characters(value) {
        errors.push(field, "invalid", format!("{field} must not contain control characters"));
        return None;
    }
    Some(value.to_owned())
}

/// Checks organization metadata: at most 50 keys of 1 to 40 characters without control
/// characters, values (free text) of at most 600 characters.
pub fn validate_metadata(
    metadata: BTreeMap<String, String>,
    field: &str,
    errors: &mut ValidationErrors,
) -> Option<BTreeMap<String, String>> {
    let errors_before = errors.errors().len();
    if metadata.len() > MAX_METADATA_KEYS {
        errors.push(
            field,
            "too_many_keys",
            format!("metadata has at most {MAX_METADATA_KEYS} keys"),
        );
    }
    for (key, value) in &metadata {
        let key_field = format!("{field}.{key}");
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY_CHARS {
            errors.push(
                key_field.clone(),
                "invalid_key",
                format!("metadata keys are 1 to {MAX_METADATA_KEY_CHARS} characters long"),
            );
        } else if has_control_characters(key) {
            errors.push(
                key_field.clone(),
                "invalid_key",
                "metadata keys must not contain control characters",
            );
        }
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            errors.push(
                key_field,
                "too_long",
                format!("metadata values are at most {MAX_METADATA_VALUE_CHARS} characters long"),
            );
        }
    }
    (errors.errors().len() == errors_before).then_some(metadata)
}

/// Checks and normalises (to lower case) a domain name.
pub fn validate_domain(domain: &str, field: &str, errors: &mut ValidationErrors) -> Option<String> {
    let normalised = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = normalised.split('.').collect();
    let valid = normalised.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        });
    if !valid {
        errors.push(
            field,
            "invalid_domain",
            format!("`{domain}` is not a valid domain name"),
        );
        return None;
    }
    Some(normalised)
}

/// Checks a list of domains: each valid, none repeated, at most [`MAX_DOMAINS`].
pub fn validate_domains(
    inputs: Vec<(String, Option<DomainState>)>,
    field: &str,
    errors: &mut ValidationErrors,
) -> Option<Vec<DomainInput>> {
    if inputs.len() > MAX_DOMAINS {
        errors.push(
            field,
            "too_many",
            format!("an organization has at most {MAX_DOMAINS} domains"),
        );
        return None;
    }
    let errors_before = errors.errors().len();
    let mut domains: Vec<DomainInput> = Vec::with_capacity(inputs.len());
    for (index, (domain, state)) in inputs.into_iter().enumerate() {
        let item_field = format!("{field}.{index}.domain");
        let Some(domain) = validate_domain(&domain, &item_field, errors) else {
            continue;
        };
        if domains.iter().any(|existing| existing.domain == domain) {
            errors.push(item_field, "duplicate", format!("`{domain}` is listed more than once"));
            continue;
        }
        domains.push(DomainInput {
            domain,
            state: state.unwrap_or(DomainState::Pending),
        });
    }
    (errors.errors().len() == errors_before).then_some(domains)
}

#[cfg(test)]
mod tests {
    use ulid::Ulid;

    use super::*;

    fn stamp(millis: i64) -> Timestamp {
        Timestamp::from_unix_millis(millis).unwrap()
    }

    fn domain_ids() -> impl FnMut() -> OrganizationDomainId {
        let mut counter = 0u128;
        move || {
            counter += 1;
            OrganizationDomainId::from_ulid(Ulid::from_parts(1, counter))
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        let mut errors = ValidationErrors::new();
        assert_eq!(validate_name("  Acme  ", "name", &mut errors).as_deref(), Some("Acme"));
        assert!(validate_name("   ", "name", &mut errors).is_none());
        assert!(validate_name(&"x".repeat(MAX_NAME_CHARS + 1), "name", &mut errors).is_none());
        assert!(validate_name("a\u{0}b", "name", &mut errors).is_none());
        assert!(validate_name("a\u{9b}b", "name", &mut errors).is_none());
        let codes: Vec<_> = errors.errors().iter().map(|error| error.code.as_ref()).collect();
        assert_eq!(codes, ["required", "too_long", "invalid", "invalid"]);
    }

    #[test]
    fn domains_are_normalised_and_checked() {
        let mut errors = ValidationErrors::new();
        assert_eq!(
            validate_domain("Foo-Corp.COM.", "d", &mut errors).as_deref(),
            Some("foo-corp.com")
        );
        for bad in ["localhost", "-a.com", "a-.com", "a..com", "a b.com", "exa_mple.com", ""] {
            assert!(validate_domain(bad, "d", &mut errors).is_none(), "{bad}");
        }
        let domains = validate_domains(
            vec![("a.com".into(), None), ("A.com".into(), Some(DomainState::Verified))],
            "domain_data",
            &mut ValidationErrors::new(),
        );
        assert!(domains.is_none(), "case-insensitive duplicates are refused");
    }

    #[test]
    fn metadata_limits() {
        let mut errors = ValidationErrors::new();
        let ok: BTreeMap<_, _> = [("tier".to_owned(), "gold".to_owned())].into();
        assert!(validate_metadata(ok, "metadata", &mut errors).is_some());
        let too_many: BTreeMap<_, _> = (0..=MAX_METADATA_KEYS)
            .map(|n| (format!("k{n}"), String::new()))
            .collect();
        assert!(validate_metadata(too_many, "metadata", &mut errors).is_none());
        let long_key: BTreeMap<_, _> = [("k".repeat(41), String::new())].into();
        assert!(validate_metadata(long_key, "metadata", &mut errors).is_none());
        let long_value: BTreeMap<_, _> = [("k".to_owned(), "v".repeat(601))].into();
        assert!(validate_metadata(long_value, "metadata", &mut errors).is_none());
        let control_key: BTreeMap<_, _> = [("a\u{1b}b".to_owned(), String::new())].into();
        assert!(validate_metadata(control_key, "metadata", &mut errors).is_none());
        assert_eq!(errors.errors().len(), 4);
        let control_value: BTreeMap<_, _> = [("note".to_owned(), "two\nlines".to_owned())].into();
        assert!(validate_metadata(control_value, "metadata", &mut errors).is_some());
    }

    #[test]
    fn updates_keep_domain_ids_for_domains_that_stay() {
        let mut next_id = domain_ids();
        let request = NewOrganization {
            name: "Acme".into(),
            external_id: None,
            metadata: BTreeMap::new(),
            domains: vec![
                DomainInput {
                    domain: "a.com".into(),
                    state: DomainState::Pending,
                },
                DomainInput {
                    domain: "b.com".into(),
                    state: DomainState::Pending,
                },
            ],
            allow_profiles_outside_organization: false,
        };
        let id = OrganizationId::from_ulid(Ulid::from_parts(1, 0));
        let mut organization = Organization::create(id, request, stamp(1000), &mut next_id);
        let kept_id = organization.domains[1].id;

        organization.apply(
            OrganizationUpdate {
                domains: Some(vec![
                    DomainInput {
                        domain: "b.com".into(),
                        state: DomainState::Verified,
                    },
                    DomainInput {
                        domain: "c.com".into(),
                        state: DomainState::Pending,
                    },
                ]),
                external_id: Some(Some("ext".into())),
                ..OrganizationUpdate::default()
            },
            stamp(2000),
            &mut next_id,
        );
        assert_eq!(organization.domains.len(), 2);
        assert_eq!(organization.domains[0].id, kept_id);
        assert_eq!(organization.domains[0].state, DomainState::Verified);
        assert_eq!(organization.domains[0].created_at, stamp(1000));
        assert_eq!(organization.domains[0].updated_at, stamp(2000));
        assert_eq!(organization.domains[1].domain, "c.com");
        assert_eq!(organization.external_id.as_deref(), Some("ext"));
        assert_eq!(organization.name, "Acme");
        assert_eq!(organization.updated_at, stamp(2000));
        assert_eq!(organization.created_at, stamp(1000));
    }
}
