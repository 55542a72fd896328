//! Shared wire shapes: the list envelope, pagination parameters and timestamps.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use vellum_core::pagination::{DEFAULT_LIMIT, MAX_LIMIT};
use vellum_core::{Cursor, Order, Page, PageRequest, ValidationErrors};

use crate::extract::QueryPairs;

/// A type whose wire form is one fixed string, such as an object's `object` member: its schema
/// is an enum of that one value.
macro_rules! wire_const {
    ($(#[$attribute:meta])* $name:ident = $value:literal) => {
        $(#[$attribute])*
        #[derive(Clone, Copy, Debug, Default, serde::Serialize)]
        pub(crate) enum $name {
            #[default]
            #[serde(rename = $value)]
            Value,
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$value]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use wire_const;

wire_const!(
    /// `"list"`.
    ListObject = "list"
);

/// WorkOS's list envelope: `{"object": "list", "data": [...], "list_metadata": {...}}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ListResponse<T> {
    object: ListObject,
    data: Vec<T>,
    list_metadata: ListMetadata,
}

/// The cursors of a page: pass `before` or `after` back to get the page before or after this
/// one; `null` when there is none that way.
#[derive(Serialize, ToSchema)]
pub(crate) struct ListMetadata {
    #[schema(required = true)]
    before: Option<String>,
    #[schema(required = true)]
    after: Option<String>,
}

impl<T> ListResponse<T> {
    /// A list that is one whole page: no cursors.
    pub(crate) fn all(data: Vec<T>) -> Self {
        Self {
            object: ListObject::Value,
            data,
            list_metadata: ListMetadata {
                before: None,
                after: None,
            },
        }
    }

    /// Renders a page, turning each item and each cursor key into its wire form.
    pub(crate) fn from_page<I, K: ToString>(page: Page<I, K>, render: impl Fn(I) -> T) -> Self {
        Self {
            object: ListObject::Value,
            data: page.data.into_iter().map(render).collect(),
            list_metadata: ListMetadata {
                before: page.list_metadata.before.map(|key| key.to_string()),
                after: page.list_metadata.after.map(|key| key.to_string()),
            },
        }
    }
}

/// The order of a list: `desc` (newest first, the default), `asc`, or `normal` (newest first,
/// with `before` fetching older and `after` newer items).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // names the values of `order` for the document
pub(crate) enum PaginationOrder {
    Normal,
    Desc,
    Asc,
}

/// The pagination parameters of every list.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // describes the query for the document; read by `page_request`
pub(crate) struct PageParams {
    /// How many items a page holds.
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<u32>,
    #[param(inline)]
    order: Option<PaginationOrder>,
    /// A cursor from `list_metadata.before`: the page before it.
    before: Option<String>,
    /// A cursor from `list_metadata.after`: the page after it.
    after: Option<String>,
}

/// Reads `limit`, `order`, `before` and `after`, recording problems in `errors`.
/// `parse_key` turns a cursor into a key, or says why it cannot.
pub(crate) fn page_request<K>(
    query: &QueryPairs,
    errors: &mut ValidationErrors,
    parse_key: impl Fn(&str) -> Result<K, String>,
) -> PageRequest<K> {
    let mut request = PageRequest::default();
    match query.single("limit") {
        Ok(None) => {}
        Ok(Some(text)) => match text.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => request.limit = limit,
            _ => errors.push(
                "limit",
                "invalid",
                format!("limit must be an integer from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"),
            ),
        },
        Err(_) => errors.push("limit", "repeated", "limit may be given only once"),
    }
    match query.single("order") {
        Ok(None) => {}
        Ok(Some(text)) => match Order::parse(text) {
            Some(order) => request.order = order,
            None => errors.push("order", "invalid", "order must be one of `asc`, `desc` or `normal`"),
        },
        Err(_) => errors.push("order", "repeated", "order may be given only once"),
    }
    let mut cursor = |name: &str| match query.single(name) {
        Ok(Some(text)) if !text.is_empty() => match parse_key(text) {
            Ok(key) => Some(key),
            Err(message) => {
                errors.push(name, "invalid_cursor", message);
                None
            }
        },
        Ok(_) => None,
        Err(_) => {
            errors.push(name, "repeated", format!("{name} may be given only once"));
            None
        }
    };
    let before = cursor("before");
    let after = cursor("after");
    request.cursor = match (before, after) {
        (Some(_), Some(_)) => {
            errors.push("before", "conflict", "give either `before` or `after`, not both");
            None
        }
        (Some(key), None) => Some(Cursor::Before(key)),
        (None, Some(key)) => Some(Cursor::After(key)),
        (None, None) => None,
    };
    request
}

/// Deserialises a field that distinguishes "absent" (`None`) from "null" (`Some(None)`).
/// Use with `#[serde(default, deserialize_with = "double_option")]`.
pub(crate) fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A `T` read from a JSON object only.
///
/// serde's derived structs also read a JSON array member by member, so that
/// `["Foo Corp", null, …]` would be taken for `{"name": "Foo Corp", …}`: no client sends that,
/// and a malformed body must be refused rather than given a meaning. Every request body and
/// every object inside one is read through this (see [`object_or_null`], [`objects_or_null`]).
pub(crate) struct ObjectOnly<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(ObjectOnly)
    }
}

/// For `#[serde(default, deserialize_with = "…")]` on an `Option<T>` member: `null` or absent is
/// `None`, an object is `Some`, anything else is refused.
pub(crate) fn object_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<ObjectOnly<T>>::deserialize(deserializer)?.map(|object| object.0))
}

/// For `#[serde(default, deserialize_with = "…")]` on an `Option<Vec<T>>` member: an array whose
/// items are objects, or `null`.
pub(crate) fn objects_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Vec<T>>, D::Error> {
    let objects = Option::<Vec<ObjectOnly<T>>>::deserialize(deserializer)?;
    Ok(objects.map(|objects| objects.into_iter().map(|object| object.0).collect()))
}
