//! Request bodies as serde types, refused as Atlas refuses them. A body type is a plain
//! `#[derive(Deserialize)]` struct whose fields are all optional; [`parse`] reads its attribute
//! names from the derive and checks a JSON object against it in a fixed order:
//!
//! 1. not an object: 400 `INVALID_JSON`;
//! 2. an attribute the type does not declare: 400 `INVALID_ATTRIBUTE` naming the first one, before
//!    any value is looked at;
//! 3. `null` is the same as absent;
//! 4. each attribute in the order the struct declares it: a value of the wrong type or out of
//!    its set is 400 `INVALID_ATTRIBUTE` naming it (or what the value's own type says, see
//!    [`Nested`] and [`X509TypeName`]); an attribute repeating a path parameter
//!    ([`AtlasBody::PATH_ATTRIBUTES`]) must equal it.
//!
//! So the first error a body gets does not depend on the order of its keys, and a field's place
//! in its struct is the place of its check. [`AtlasJson`] is the extractor that does all this.
//!
//! Errors of a nested value travel through serde as a marked message (serde's errors carry
//! text only); [`refusal`] reads the mark back. Nothing outside this file sees the mark.

use std::borrow::Cow;

use axum::extract::{FromRequest, FromRequestParts as _, Path, Request};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};
use serde_json::{Map, Value};

use super::extract::JsonBody;
use super::response::{ApiError, Reply};
use crate::proto::v1;

/// A request body type: a derived `Deserialize` struct of optional fields.
pub trait AtlasBody: DeserializeOwned {
    /// Attributes that repeat a path parameter and must equal it when present, as (attribute,
    /// path parameter name) pairs; a parameter the route does not have is skipped.
    const PATH_ATTRIBUTES: &'static [(&'static str, &'static str)] = &[];
}

/// A JSON body parsed as `T` (see the module header), read by [`JsonBody`] (size bound,
/// `MALFORMED_JSON`, empty body as `{}`).
#[derive(Debug)]
pub struct AtlasJson<T>(pub T);

impl<T, S> FromRequest<S> for AtlasJson<T>
where
    T: AtlasBody,
    S: Send + Sync,
{
    type Rejection = Reply;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let mut pinned = Vec::new();
        if !T::PATH_ATTRIBUTES.is_empty() {
            // The handler's `AtlasPath` has already refused a path that does not decode.
            let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(&mut parts, state)
                .await
                .map_err(|_| ApiError::invalid_path())?;
            for (attribute, parameter) in T::PATH_ATTRIBUTES {
                if let Some((_, value)) = params.iter().find(|(name, _)| name == parameter) {
                    pinned.push((*attribute, value.clone()));
                }
            }
        }
        let JsonBody(value) =
            JsonBody::from_request(Request::from_parts(parts, body), state).await?;
        let pinned: Vec<(&str, &str)> = pinned.iter().map(|(a, v)| (*a, v.as_str())).collect();
        parse(value, &pinned).map(Self).map_err(Reply::from)
    }
}

/// Parses a JSON value as the body type `T`, checking it as the module header says; `pinned`
/// names attributes that must equal the given value when present.
pub fn parse<T: DeserializeOwned>(value: Value, pinned: &[(&str, &str)]) -> Result<T, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::invalid_json());
    };
    let names = attribute_names::<T>();
    if let Some(unknown) = map.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(ApiError::invalid_attribute(unknown));
    }
    let map: Map<String, Value> = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
    for &name in names {
        let Some(value) = map.get(name) else {
            continue;
        };
        let alone = Value::Object(Map::from_iter([(name.to_owned(), value.clone())]));
        if let Err(error) = T::deserialize(alone) {
            return Err(refusal(name, &error));
        }
        if let Some((_, expected)) = pinned.iter().find(|(attribute, _)| *attribute == name)
            && value.as_str() != Some(*expected)
        {
            return Err(ApiError::invalid_attribute(name));
        }
    }
    // Every attribute passed alone, so together they do (the fields are independent).
    T::deserialize(Value::Object(map)).map_err(|_| ApiError::invalid_json())
}

/// A JSON object nested in a body (an item of `roles`), checked as a body of its own: its
/// errors name its own attributes; a value that is not an object names the outer attribute.
#[derive(Debug)]
pub struct Nested<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if !value.is_object() {
            return Err(de::Error::custom("not an object"));
        }
        parse(value, &[]).map(Self).map_err(carry)
    }
}

/// A JSON object nested in a body that is refused as a whole (`customerX509`): not an object
/// or an attribute it does not declare names the outer attribute; a value of the wrong type
/// names its own attribute.
#[derive(Debug)]
pub struct Whole<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let names = attribute_names::<T>();
        match &value {
            Value::Object(map) if map.keys().all(|k| names.contains(&k.as_str())) => {}
            _ => return Err(de::Error::custom("not an object of known attributes")),
        }
        parse(value, &[]).map(Self).map_err(carry)
    }
}

/// An Atlas attribute for something dbcert does not offer (AWS IAM, LDAP, OIDC): accepted only
/// as `"NONE"`, so a user read from Atlas's API can be sent back.
#[derive(Debug)]
pub struct NotUsed;

impl<'de> Deserialize<'de> for NotUsed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "NONE" => Ok(Self),
            _ => Err(de::Error::custom("only NONE is accepted")),
        }
    }
}

/// An Atlas list dbcert does not keep (`labels`, `scopes`): accepted only empty.
#[derive(Debug)]
pub struct NoItems;

impl<'de> Deserialize<'de> for NoItems {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if Vec::<de::IgnoredAny>::deserialize(deserializer)?.is_empty() {
            Ok(Self)
        } else {
            Err(de::Error::custom("only an empty list is accepted"))
        }
    }
}

/// An Atlas `x509Type`: a string that is not one of its names is 400 `INVALID_ENUM_VALUE`
/// naming the value; a value that is not a string is `INVALID_ATTRIBUTE`.
#[derive(Clone, Copy, Debug)]
pub struct X509TypeName(pub v1::X509Type);

impl<'de> Deserialize<'de> for X509TypeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "NONE" => Ok(Self(v1::X509Type::None)),
            "MANAGED" => Ok(Self(v1::X509Type::Managed)),
            "CUSTOMER" => Ok(Self(v1::X509Type::Customer)),
            _ => Err(carry(ApiError::invalid_enum_value(&name))),
        }
    }
}

/// A project CA key type (`caKeyType`): `RSA_4096`, `ECDSA_P256` or `ECDSA_P384`; another
/// string is 400 `INVALID_ENUM_VALUE` naming the value.
#[derive(Clone, Copy, Debug)]
pub struct CaKeyTypeName(pub v1::KeyType);

impl<'de> Deserialize<'de> for CaKeyTypeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "RSA_4096" => Ok(Self(v1::KeyType::Rsa4096)),
            "ECDSA_P256" => Ok(Self(v1::KeyType::EcdsaP256)),
            "ECDSA_P384" => Ok(Self(v1::KeyType::EcdsaP384)),
            _ => Err(carry(ApiError::invalid_enum_value(&name))),
        }
    }
}

// === JSON Schemas (the OpenAPI document) ===
//
// The schemas of the types above say what their `Deserialize` accepts, so a body type's
// derived schema is the body `parse` accepts.

impl<T: JsonSchema> JsonSchema for Nested<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

impl<T: JsonSchema> JsonSchema for Whole<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

impl JsonSchema for NotUsed {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "NotUsed".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"const": "NONE"})
    }
}

impl JsonSchema for NoItems {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "NoItems".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "array", "maxItems": 0})
    }
}

impl JsonSchema for X509TypeName {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "X509Type".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "enum": ["NONE", "MANAGED", "CUSTOMER"]})
    }
}

impl JsonSchema for CaKeyTypeName {
    fn schema_name() -> Cow<'static, str> {
        "CaKeyType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "enum": ["RSA_4096", "ECDSA_P256", "ECDSA_P384"]})
    }
}

/// The mark of an error carried through serde; no message of serde or serde_json starts so.
const MARK: &str = "\u{0}atlas\u{0}";

/// Turns an Atlas refusal into a serde error that [`refusal`] turns back.
fn carry<E: de::Error>(error: ApiError) -> E {
    let parameter = error
        .parameters
        .first()
        .and_then(Value::as_str)
        .unwrap_or_default();
    E::custom(format!("{MARK}{}\u{0}{parameter}", error.error_code))
}

/// The refusal of attribute `name` whose value failed with `error`: a carried refusal, or
/// `INVALID_ATTRIBUTE` naming it.
fn refusal(name: &str, error: &impl std::fmt::Display) -> ApiError {
    let text = error.to_string();
    let carried = text
        .strip_prefix(MARK)
        .and_then(|rest| rest.split_once('\u{0}'));
    match carried {
        Some(("INVALID_ENUM_VALUE", value)) => ApiError::invalid_enum_value(value),
        Some((_, attribute)) => ApiError::invalid_attribute(attribute),
        None => ApiError::invalid_attribute(name),
    }
}

/// The attribute names of a derived `Deserialize` struct, in declaration order (what the
/// derive passes to `deserialize_struct`); empty for any other type.
fn attribute_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(AttributeNames(&mut names));
    names
}

/// A deserializer that only records the field names a struct asks for, then fails.
struct AttributeNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for AttributeNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("names recorded"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

// === duplicate keys ===

/// The first key that appears twice in one JSON object of `bytes`, at any depth (serde_json
/// keeps the last of them, so `{"username":"a","username":"b"}` would read as `b` where another
/// parser reads `a`). `None` when every object's keys are distinct, and for bytes that are not
/// JSON (the caller's parse reports those). The caller bounds `bytes` (`MAX_BODY_BYTES`) and
/// serde_json bounds the nesting (128 levels).
pub fn duplicate_key(bytes: &[u8]) -> Option<String> {
    let mut duplicate = None;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let _ = de::DeserializeSeed::deserialize(UniqueKeys(&mut duplicate), &mut deserializer);
    duplicate
}

/// Walks a JSON value, recording the first repeated key of an object and stopping there.
struct UniqueKeys<'a>(&'a mut Option<String>);

impl<'de> de::DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(UniqueKeys(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                *self.0 = Some(key);
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(UniqueKeys(&mut *self.0))?;
            keys.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Sample {
        count: Option<i64>,
        name: Option<String>,
        kind: Option<X509TypeName>,
        items: Option<Vec<Nested<Item>>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Item {
        role_name: Option<String>,
    }

    fn refused(value: Value) -> (String, Vec<Value>) {
        let error = parse::<Sample>(value, &[("name", "n")]).unwrap_err();
        (error.error_code, error.parameters)
    }

    #[test]
    fn names_come_from_the_derive_in_declaration_order() {
        assert_eq!(
            attribute_names::<Sample>(),
            &["count", "name", "kind", "items"]
        );
        assert_eq!(attribute_names::<String>(), &[] as &[&str]);
    }

    #[test]
    fn unknown_attributes_are_refused_before_values() {
        assert_eq!(
            refused(json!({"count": "x", "zz": 1, "yy": 2})),
            ("INVALID_ATTRIBUTE".into(), vec![json!("zz")])
        );
        assert_eq!(refused(json!([1])).0, "INVALID_JSON");
        assert_eq!(refused(json!("s")).0, "INVALID_JSON");
    }

    #[test]
    fn values_are_checked_in_declaration_order() {
        // `kind` comes after `count` in the struct, whatever the order of the keys.
        assert_eq!(
            refused(json!({"kind": "BAD", "count": 1.5})),
            ("INVALID_ATTRIBUTE".into(), vec![json!("count")])
        );
        assert_eq!(
            refused(json!({"items": 1, "kind": "BAD"})),
            ("INVALID_ENUM_VALUE".into(), vec![json!("BAD")])
        );
        assert_eq!(
            refused(json!({"kind": 3})),
            ("INVALID_ATTRIBUTE".into(), vec![json!("kind")])
        );
        // A pinned attribute is compared after its type check, in its place.
        assert_eq!(
            refused(json!({"name": "other", "kind": "BAD"})),
            ("INVALID_ATTRIBUTE".into(), vec![json!("name")])
        );
        let too_large: Value = serde_json::from_str("99999999999999999999").unwrap();
        for bad in [json!("12"), json!(1.5), json!(u64::MAX), too_large] {
            assert_eq!(
                refused(json!({ "count": bad })),
                ("INVALID_ATTRIBUTE".into(), vec![json!("count")])
            );
        }
    }

    #[test]
    fn nested_objects_name_their_own_attributes() {
        assert_eq!(
            refused(json!({"items": [{"roleName": "r"}, {"roleName": 1, "x": 2}]})),
            ("INVALID_ATTRIBUTE".into(), vec![json!("x")])
        );
        assert_eq!(
            refused(json!({"items": [{"roleName": 1}]})),
            ("INVALID_ATTRIBUTE".into(), vec![json!("roleName")])
        );
        assert_eq!(
            refused(json!({"items": [null]})),
            ("INVALID_ATTRIBUTE".into(), vec![json!("items")])
        );
        assert_eq!(
            refused(json!({"items": {}})),
            ("INVALID_ATTRIBUTE".into(), vec![json!("items")])
        );
    }

    #[test]
    fn null_is_absent_and_good_bodies_parse() {
        let body: Sample = parse(
            json!({"count": null, "name": "n", "kind": "MANAGED", "items": [{"roleName": null}]}),
            &[("name", "n")],
        )
        .unwrap();
        assert_eq!(body.count, None);
        assert_eq!(body.name.as_deref(), Some("n"));
        assert_eq!(body.kind.unwrap().0, v1::X509Type::Managed);
        assert_eq!(body.items.unwrap()[0].0.role_name, None);
    }

    #[test]
    fn whole_objects_name_the_outer_attribute_for_their_shape() {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Outer {
            #[allow(dead_code)]
            customer_x509: Option<Whole<Inner>>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Inner {
            #[allow(dead_code)]
            cas: Option<String>,
        }
        let code = |v: Value| parse::<Outer>(v, &[]).unwrap_err().parameters;
        assert_eq!(
            code(json!({"customerX509": {"x": 1}})),
            vec![json!("customerX509")]
        );
        assert_eq!(
            code(json!({"customerX509": 1})),
            vec![json!("customerX509")]
        );
        assert_eq!(
            code(json!({"customerX509": {"cas": 1}})),
            vec![json!("cas")]
        );
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        assert_eq!(duplicate_key(br#"{"a":1,"b":2}"#), None);
        assert_eq!(
            duplicate_key(br#"{"username":"a","username":"b"}"#).as_deref(),
            Some("username")
        );
        assert_eq!(
            duplicate_key(br#"{"roles":[{"roleName":"r","databaseName":"d","roleName":"s"}]}"#)
                .as_deref(),
            Some("roleName")
        );
        assert_eq!(
            duplicate_key(br#"{"a":{"x":1},"b":{"x":2}}"#),
            None,
            "the same key in sibling objects is fine"
        );
        assert_eq!(
            duplicate_key(br#"{"\u0061":1,"a":2}"#).as_deref(),
            Some("a"),
            "keys compare after unescaping"
        );
        assert_eq!(duplicate_key(br#"[1,"x",null,true,1.5,-3]"#), None);
        assert_eq!(duplicate_key(b"{not json"), None);
    }
}
