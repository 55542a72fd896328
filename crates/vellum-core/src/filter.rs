//! Limits on what a client may filter a list by, so that every filter a request can express is
//! a query the store can run (`docs/events.md`, `docs/exports.md`).
//!
//! Each value of a list filter is one bound parameter of the store's query. SQLite refuses a
//! statement with more than 32,766 of them (999 before version 3.32), so a list of 33,000 actions
//! was a 500. With at most [`MAX_FILTER_VALUES`] values per list, the listing that combines the
//! most lists (the legacy `GET /events`, seven) binds at most 7 × 100 + 10 values: below even the
//! old limit, whatever the combination.

use crate::event::EventInput;
use crate::validation::ValidationErrors;

/// The most values one list filter takes: `actions`, `actor_ids`, `actor_names`, `targets`,
/// `target_ids` of `GET /audit_logs/events` and of exports, the legacy `GET /events` filters,
/// and the `domains` filter of `GET /organizations`.
pub const MAX_FILTER_VALUES: usize = 100;

/// The longest search term, in characters (longer than any stored name or id: a longer term
/// could only match inside a user agent or metadata value, and would make the query's pattern
/// longer than SQLite accepts).
pub const MAX_SEARCH_CHARS: usize = 1024;

/// The most lists one filter combines (the legacy listing's), for the bound above.
pub const MAX_FILTER_LISTS: usize = 7;

/// Checked when compiling: every combination of lists, plus the other parameters of a listing
/// (organization, time range, cursor, search, limit: at most 10), fits in one statement under
/// SQLite's smallest default limit on bound parameters (999, before version 3.32).
const _: () = assert!(MAX_FILTER_LISTS * MAX_FILTER_VALUES + 10 < 999);

/// Records a problem when a list filter has more than [`MAX_FILTER_VALUES`] values; true when it
/// is within the limit.
pub fn check_filter_values(field: &str, count: usize, errors: &mut ValidationErrors) -> bool {
    if count > MAX_FILTER_VALUES {
        errors.push(
            field,
            "too_many",
            format!("{field} takes at most {MAX_FILTER_VALUES} values (got {count})"),
        );
        return false;
    }
    true
}

/// Records a problem when a search term is longer than [`MAX_SEARCH_CHARS`]; true when it is
/// within the limit.
pub fn check_search(field: &str, text: &str, errors: &mut ValidationErrors) -> bool {
    if text.chars().count() > MAX_SEARCH_CHARS {
        errors.push(
            field,
            "too_long",
            format!("{field} is at most {MAX_SEARCH_CHARS} characters long"),
        );
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_inclusive_and_name_the_field() {
        let mut errors = ValidationErrors::new();
        assert!(check_filter_values("actions", MAX_FILTER_VALUES, &mut errors));
        assert!(!check_filter_values("actions", MAX_FILTER_VALUES + 1, &mut errors));
        assert!(check_search("search", &"é".repeat(MAX_SEARCH_CHARS), &mut errors));
        assert!(!check_search("search", &"x".repeat(MAX_SEARCH_CHARS + 1), &mut errors));
        let fields: Vec<_> = errors
            .errors()
            .iter()
            .map(|error| (error.field.as_str(), error.code.as_ref()))
            .collect();
        assert_eq!(fields, [("actions", "too_many"), ("search", "too_long")]);
    }
}

/// The list filters of a listing, an export or a live tail, checked against one event in
/// memory, as the store's queries check them: each non-empty list matches any of its values,
/// and the lists combine with AND (an actor without a name matches no `actor_names`; an event
/// matches `target_types` or `target_ids` through any of its targets).
#[derive(Clone, Copy, Debug, Default)]
pub struct ListFilters<'a> {
    /// Actions.
    pub actions: &'a [String],
    /// Actor ids.
    pub actor_ids: &'a [String],
    /// Actor names.
    pub actor_names: &'a [String],
    /// Target types.
    pub target_types: &'a [String],
    /// Target ids.
    pub target_ids: &'a [String],
}

impl ListFilters<'_> {
    /// Whether the event passes every list.
    pub fn matches(&self, input: &EventInput) -> bool {
        let listed = |list: &[String], value: &str| list.is_empty() || list.iter().any(|item| item == value);
        listed(self.actions, &input.action)
            && listed(self.actor_ids, &input.actor.id)
            && (self.actor_names.is_empty()
                || input
                    .actor
                    .name
                    .as_deref()
                    .is_some_and(|name| listed(self.actor_names, name)))
            && (self.target_types.is_empty()
                || input
                    .targets
                    .iter()
                    .any(|target| listed(self.target_types, &target.target_type)))
            && (self.target_ids.is_empty() || input.targets.iter().any(|target| listed(self.target_ids, &target.id)))
    }
}
