//! The API contract. `document()` is the OpenAPI document as served: utoipa's output from the
//! handlers' annotations, completed here with what annotations cannot say once for every
//! operation (the statuses every operation of a kind can answer, public endpoints, unique
//! operation ids) and with the constraints of the request schemas that the store's types do not
//! carry (enums, ranges, lengths, patterns).
//!
//! The same document then checks requests: `check_body`, `check_query`, `check_path` and
//! `check_form_text` (called by the extractors in `crate::error` and by the import form) hold
//! every JSON body, query string, path value and import form field to the schema of its
//! operation before a handler sees it. A value the document calls invalid is refused (422 in a
//! JSON body, 400 elsewhere), whatever the store would make of it, so the document and the code
//! cannot drift apart, and a new endpoint is held to its annotations from its first request.
//! What the document allows the store must take: that direction is what `.ci/contract` fuzzes.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::error::ApiError;

/// Characters Rust's `str::trim` removes (Unicode White_Space), for patterns that must agree
/// with the store's trimming; NUL is added where a pattern excludes characters.
const WS: &str = r"\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// Any text without NUL: PostgreSQL's `text` cannot hold U+0000, so no engine stores it.
pub const NO_NUL: &str = r"^[^\x00]*$";

/// Text with at least one character that is not white space, and no NUL.
fn not_blank() -> String {
    format!(r"^[^\x00]*[^\x00{WS}][^\x00]*$")
}

/// An email address as the store reads it: one `@`, something before it, a dot inside the
/// domain, no white space.
fn email() -> String {
    format!(r"^[^@\x00{WS}]+@[^@.\x00{WS}][^@\x00{WS}]*\.[^@\x00{WS}]*[^@.\x00{WS}]$")
}

/// An import's header mapping: `SOURCE=FIELD`, neither side blank.
fn mapping() -> String {
    format!(r"^[^\x00=]*[^\x00={WS}][^\x00=]*=[^\x00]*[^\x00{WS}][^\x00]*$")
}

/// A mainland China mobile number: 11 digits starting 13–19, optionally after `+86`.
pub const MOBILE: &str = r"^(?:\+86)?1[3-9][0-9]{9}$";

/// A page cursor: the lowercase hex `next_cursor` of a previous page.
pub const CURSOR: &str = r"^(?:[0-9a-f]{2})+$";

/// The largest amount of money one value of a request may hold, in minor units (10¹³ cents,
/// 100 billion yuan): far above any real order, and far enough below `i64::MAX` (9.2·10¹⁸) that
/// sums over the orders the API takes stay clear of overflow.
pub const MAX_CENTS: i64 = 10_000_000_000_000;

/// The most orders or interactions of one request (more go through the import).
pub const MAX_BATCH: usize = 10_000;

/// The most units of one line.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// Longest identifier from another system (external ids) and catalogue name, in characters;
/// such values are unique keys, and an index entry has a size limit.
pub const MAX_ID_CHARS: u64 = 200;

/// The served document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let (doc, problems) = build();
        for p in &problems {
            tracing::error!(problem = %p, "OpenAPI document");
        }
        doc
    })
}

/// Builds the document and lists what could not be applied (a renamed schema or property: the
/// unit test keeps this list empty).
pub fn build() -> (Value, Vec<String>) {
    let mut doc = serde_json::to_value(super::ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    let mut problems = Vec::new();
    add_openapi_path(&mut doc);
    constrain_schemas(&mut doc, &mut problems);
    constrain_service_schemas(&mut doc, &mut problems);
    constrain_survey_schemas(&mut doc, &mut problems);
    constrain_webhook_schemas(&mut doc, &mut problems);
    constrain_access_schemas(&mut doc, &mut problems);
    constrain_engagement_schemas(&mut doc, &mut problems);
    constrain_campaign_schemas(&mut doc, &mut problems);
    constrain_cost_schemas(&mut doc, &mut problems);
    constrain_journey_schemas(&mut doc, &mut problems);
    constrain_account_schemas(&mut doc, &mut problems);
    constrain_fulfilment_schemas(&mut doc, &mut problems);
    constrain_customer_event_schemas(&mut doc, &mut problems);
    bound_dates(&mut doc);
    add_responses(&mut doc);
    complete_operations(&mut doc);
    add_links(&mut doc, &mut problems);
    declare_permissions(&mut doc);
    (doc, problems)
}

/// Each operation says the permission it needs (`x-permission`, null: any authenticated
/// caller), from the table the server enforces (`super::access::ROUTES`), and repeats it at the
/// end of its description.
fn declare_permissions(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else { continue };
        for (method, op) in ops.iter_mut() {
            let Ok(m) = method.to_uppercase().parse::<Method>() else { continue };
            let Some(declared) = super::access::declared(&m, path) else { continue };
            let Some(op) = op.as_object_mut() else { continue };
            let name = declared.map(|p| p.as_str());
            op.insert("x-permission".into(), json!(name));
            let mut note = match name {
                Some(n) => format!("Permission: `{n}`."),
                None => "Permission: any authenticated caller.".into(),
            };
            if super::access::whole_base(&m, path) {
                note.push_str(" Reads across every customer: also `all_customers`.");
                op.insert("x-permission-all-customers".into(), json!(true));
            }
            let description = match op.get("description").and_then(Value::as_str) {
                Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
                _ => note,
            };
            op.insert("description".into(), json!(description));
        }
    }
}

/// `GET /api/v1/openapi.json` is an endpoint like any other; it serves this document.
fn add_openapi_path(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        paths.insert(
            "/api/v1/openapi.json".into(),
            json!({"get": {
                "tags": ["platform"],
                "summary": "This document (no authentication).",
                "responses": {"200": {"description": "The OpenAPI 3.1 document of the API.",
                    "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}),
        );
    }
}

/// Merges `patch` into the object at `pointer`; a missing target is a problem.
fn merge(doc: &mut Value, pointer: &str, patch: Value, problems: &mut Vec<String>) {
    match (doc.pointer_mut(pointer).and_then(Value::as_object_mut), patch) {
        (Some(target), Value::Object(patch)) => {
            for (k, v) in patch {
                target.insert(k, v);
            }
        }
        _ => problems.push(format!("no schema at {pointer}")),
    }
}

/// An enum of `values`, plus `null` when the property is nullable (`null` must be listed for a
/// nullable enum to admit it).
fn enumeration(values: &[&str], nullable: bool) -> Value {
    let mut v: Vec<Value> = values.iter().map(|s| json!(s)).collect();
    if nullable {
        v.push(Value::Null);
    }
    json!({ "enum": v })
}

/// The constraints of the request schemas. The store accepts more in places (aliases such as
/// `company` for `organisation`, blank strings for "none", numbers in any range); the API takes
/// the canonical values written here, and `null` where a value may be cleared.
fn constrain_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    let not_blank = not_blank();
    let email = email();
    let s = "/components/schemas";
    let text = |max: u64| json!({ "pattern": not_blank, "maxLength": max });
    let id_text = json!({ "pattern": NO_NUL, "maxLength": MAX_ID_CHARS });
    let cents = json!({ "minimum": 0, "maximum": MAX_CENTS });
    let channels = patron_store::values::CONSENT_CHANNELS;
    // Attributes are free JSON, but no string in them (key or value) may hold NUL: PostgreSQL's
    // jsonb refuses `\u0000` (schemathesis: a 500 on PostgreSQL).
    if let Some(schemas) = doc.pointer_mut(s).and_then(Value::as_object_mut) {
        let value = json!({ "$ref": "#/components/schemas/AttributeValue" });
        schemas.insert(
            "AttributeValue".into(),
            json!({
                "description": "Any JSON value whose strings (and keys) hold no NUL (U+0000).",
                "anyOf": [
                    { "type": ["null", "boolean", "number"] },
                    { "type": "string", "pattern": NO_NUL },
                    { "type": "array", "items": value },
                    { "type": "object", "propertyNames": { "pattern": NO_NUL }, "additionalProperties": value }
                ]
            }),
        );
    }
    for schema in ["NewCustomer", "CustomerPatch"] {
        let p = format!("{s}/{schema}/properties");
        merge(
            doc,
            &format!("{p}/attributes"),
            json!({
                "maxProperties": patron_store::values::MAX_ATTRIBUTES,
                "propertyNames": { "pattern": NO_NUL, "maxLength": patron_store::values::MAX_ATTRIBUTE_NAME_CHARS },
                "additionalProperties": { "$ref": "#/components/schemas/AttributeValue" }
            }),
            problems,
        );
        merge(doc, &format!("{p}/external_id"), id_text.clone(), problems);
        merge(doc, &format!("{p}/kind"), enumeration(&["person", "organisation"], true), problems);
        merge(doc, &format!("{p}/name"), text(200), problems);
        merge(doc, &format!("{p}/mobile"), json!({ "pattern": MOBILE }), problems);
        merge(doc, &format!("{p}/email"), json!({ "pattern": email }), problems);
        merge(doc, &format!("{p}/gender"), enumeration(&["male", "female", "unknown"], true), problems);
        merge(doc, &format!("{p}/tags"), json!({ "maxItems": patron_store::values::MAX_TAGS }), problems);
        merge(doc, &format!("{p}/tags/items"), text(50), problems);
        merge(doc, &format!("{p}/consents"), json!({ "propertyNames": enumeration(&channels, false) }), problems);
    }
    let p = format!("{s}/NewContact/properties");
    merge(doc, &format!("{p}/external_id"), id_text.clone(), problems);
    merge(doc, &format!("{p}/name"), text(200), problems);
    merge(doc, &format!("{p}/mobile"), json!({ "pattern": MOBILE }), problems);
    merge(doc, &format!("{p}/email"), json!({ "pattern": email }), problems);
    merge(doc, &format!("{s}/NewNote/properties/body"), text(10_000), problems);

    let p = format!("{s}/NewOrder/properties");
    merge(doc, &format!("{p}/external_id"), id_text.clone(), problems);
    merge(doc, &format!("{p}/customer_external_id"), id_text.clone(), problems);
    merge(doc, &format!("{p}/currency"), json!({ "pattern": "^[A-Z]{3}$" }), problems);
    merge(doc, &format!("{p}/status"), enumeration(&["completed", "cancelled", "refunded", "pending"], true), problems);
    merge(doc, &format!("{p}/total_cents"), cents.clone(), problems);
    merge(doc, &format!("{p}/discount_cents"), cents.clone(), problems);
    merge(doc, &format!("{p}/lines"), json!({ "maxItems": 1000 }), problems);
    // Who the order is for, and what it came to, each one way or the other.
    merge(
        doc,
        &format!("{s}/NewOrder"),
        json!({ "allOf": [
            { "anyOf": [
                { "required": ["customer_id"], "properties": { "customer_id": { "type": "integer" } } },
                { "required": ["customer_external_id"], "properties": { "customer_external_id": { "type": "string", "pattern": not_blank } } }
            ] },
            { "anyOf": [
                { "required": ["total_cents"], "properties": { "total_cents": { "type": "integer" } } },
                { "required": ["lines"], "properties": { "lines": { "minItems": 1 } } }
            ] }
        ] }),
        problems,
    );
    // One order or a batch (all or nothing), likewise interactions.
    for (path, item) in [("/api/v1/orders", "NewOrder"), ("/api/v1/interactions", "NewInteraction")] {
        let pointer = format!("/paths/{}/post/requestBody/content/application~1json/schema", path.replace('/', "~1"));
        let one = json!({ "$ref": format!("#/components/schemas/{item}") });
        match doc.pointer_mut(&pointer) {
            Some(schema) => *schema = json!({ "oneOf": [one, { "type": "array", "items": one, "minItems": 1, "maxItems": MAX_BATCH }] }),
            None => problems.push(format!("no request body at {pointer}")),
        }
    }
    let p = format!("{s}/NewOrderLine/properties");
    merge(doc, &format!("{p}/product"), id_text.clone(), problems);
    merge(doc, &format!("{p}/category"), id_text.clone(), problems);
    merge(doc, &format!("{p}/quantity"), json!({ "minimum": 1, "maximum": MAX_QUANTITY }), problems);
    merge(doc, &format!("{p}/unit_price_cents"), cents, problems);

    let p = format!("{s}/NewInteraction/properties");
    merge(doc, &format!("{p}/external_id"), id_text.clone(), problems);
    merge(doc, &format!("{p}/customer_external_id"), id_text, problems);
    merge(doc, &format!("{p}/kind"), enumeration(&patron_store::values::INTERACTION_KINDS, false), problems);
    merge(
        doc,
        &format!("{s}/NewInteraction"),
        json!({ "anyOf": [
            { "required": ["customer_id"], "properties": { "customer_id": { "type": "integer" } } },
            { "required": ["customer_external_id"], "properties": { "customer_external_id": { "type": "string", "pattern": not_blank } } }
        ] }),
        problems,
    );

    let name_max = patron_store::segments::MAX_NAME_CHARS as u64;
    let description_max = patron_store::segments::MAX_DESCRIPTION_CHARS as u64;
    for schema in ["NewSegment", "SegmentPatch"] {
        let p = format!("{s}/{schema}/properties");
        merge(doc, &format!("{p}/name"), text(name_max), problems);
        merge(doc, &format!("{p}/description"), json!({ "pattern": NO_NUL, "maxLength": description_max }), problems);
        merge(doc, &format!("{p}/rule"), text(patron_store::segments::filter::MAX_RULE_CHARS as u64), problems);
    }
    let p = format!("{s}/PreviewRequest/properties");
    merge(doc, &format!("{p}/rule"), text(patron_store::segments::filter::MAX_RULE_CHARS as u64), problems);
    merge(doc, &format!("{p}/limit"), json!({ "minimum": 0, "maximum": 1000 }), problems);

    let p = format!("{s}/RunRequest/properties");
    merge(doc, &format!("{p}/time_unit"), enumeration(&["days", "weeks"], true), problems);
    merge(doc, &format!("{p}/horizon_days"), json!({ "minimum": 1, "maximum": 3650 }), problems);
    merge(doc, &format!("{p}/clv_months"), json!({ "minimum": 1, "maximum": 1200 }), problems);
    merge(doc, &format!("{p}/monthly_discount"), json!({ "minimum": 0, "exclusiveMaximum": 1 }), problems);
    // Holdout validations and the ABCD setting (issue 18): the unit and the basis are enums.
    let p = format!("{s}/ValidationRequest/properties");
    merge(doc, &format!("{p}/time_unit"), enumeration(&["days", "weeks"], true), problems);
    let p = format!("{s}/AbcdSettings/properties");
    merge(doc, &format!("{p}/abcd_basis"), enumeration(&["value", "value_loyalty"], false), problems);

    // An import's 422 carries the report when rows were rejected, the envelope alone when the
    // file cannot be read.
    merge(
        doc,
        "/paths/~1api~1v1~1imports/post/responses/422/content/application~1json",
        json!({ "schema": { "anyOf": [{ "$ref": "#/components/schemas/RejectedImport" }, { "$ref": "#/components/schemas/ErrorBody" }] } }),
        problems,
    );
    let p = format!("{s}/ImportForm");
    merge(doc, &p, json!({ "additionalProperties": false }), problems);
    merge(
        doc,
        &format!("{p}/properties/kind"),
        enumeration(&["customers", "contacts", "orders", "interactions", "tickets", "fulfilment"], false),
        problems,
    );
    // A form field is text: it is there or not, never null.
    merge(doc, &format!("{p}/properties/encoding"), json!({ "type": "string", "enum": ["utf-8", "gb18030"] }), problems);
    merge(doc, &format!("{p}/properties/skip_invalid"), json!({ "type": "boolean" }), problems);
    merge(doc, &format!("{p}/properties/dry_run"), json!({ "type": "boolean" }), problems);
    merge(doc, &format!("{p}/properties/map"), json!({ "type": "string", "pattern": mapping() }), problems);

    // Query parameters.
    let limit = |min: i64, max: i64| json!({ "minimum": min, "maximum": max });
    let q = |path: &str, method: &str, name: &str, patch: Value, doc: &mut Value, problems: &mut Vec<String>| {
        let params = doc.pointer_mut(&format!("/paths/{}/{method}/parameters", path.replace('/', "~1"))).and_then(Value::as_array_mut);
        match params
            .and_then(|ps| ps.iter_mut().find(|p| p["name"] == name))
            .and_then(|p| p.get_mut("schema"))
            .and_then(Value::as_object_mut)
        {
            Some(schema) => {
                if let Value::Object(patch) = patch {
                    schema.extend(patch);
                }
            }
            None => problems.push(format!("no parameter {name} on {method} {path}")),
        }
    };
    let customers = "/api/v1/customers";
    q(customers, "get", "limit", limit(1, 1000), doc, problems);
    q(customers, "get", "kind", enumeration(&["person", "organisation"], false), doc, problems);
    q(customers, "get", "sort", enumeration(&["id", "-id", "name", "-name", "updated_at", "-updated_at"], false), doc, problems);
    for sub in ["timeline", "orders", "interactions"] {
        q(&format!("/api/v1/customers/{{id}}/{sub}"), "get", "limit", limit(1, 500), doc, problems);
    }
    q("/api/v1/segments/{key}/members", "get", "limit", limit(0, 1000), doc, problems);
    q("/api/v1/segments", "get", "kind", enumeration(&["builtin", "saved"], false), doc, problems);
    q("/api/v1/cadence/overdue", "get", "tier", enumeration(&patron_store::service::policies::TIERS, false), doc, problems);
    // Account-manager KPIs (issue 19 §7): a month is YYYY-MM from 1970 (a future one is refused
    // beyond the schema); the drill-down names one KPI.
    let month = json!({ "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$" });
    q("/api/v1/kpis/account-managers", "get", "month", month.clone(), doc, problems);
    let drill = "/api/v1/kpis/account-managers/{user_id}/customers";
    q(drill, "get", "month", month, doc, problems);
    q(drill, "get", "kpi", enumeration(&patron_store::accounts::kpis::KPIS, false), doc, problems);
    // The migration matrix groups by one of three dimensions (issue 18 §2). The cohort and
    // trend months are left without a pattern on purpose: a malformed month is a 422 naming
    // the parameter (the issue's "clear error"), refused beyond the schema like `from` after `to`.
    q("/api/v1/analytics/migration", "get", "dimension", enumeration(&["abcd_tier", "rfm_class", "lifecycle"], false), doc, problems);
    for path in ["/api/v1/customers/{id}", "/api/v1/customers/{id}/scores"] {
        q(path, "get", "lang", enumeration(&["zh", "en"], false), doc, problems);
    }
    // What every string of a request still lacks: no NUL, and cursors in their own alphabet.
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for op in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|ops| ops.values_mut()) {
            for p in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                let cursor = p["name"] == "cursor";
                if let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) {
                    if cursor {
                        schema.insert("pattern".into(), json!(CURSOR));
                        schema.insert("maxLength".into(), json!(2048));
                    }
                    forbid_nul(schema);
                }
            }
        }
    }
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for schema in [
            "NewCustomer",
            "CustomerPatch",
            "NewContact",
            "NewNote",
            "NewOrder",
            "NewOrderLine",
            "NewInteraction",
            "NewSegment",
            "SegmentPatch",
            "PreviewRequest",
            "RunRequest",
            "ValidationRequest",
            "MergeRequest",
            "ImportForm",
            // Web analytics (issue 19 §8): a site's name and the category rules are stored text.
            "NewSite",
            "IdentityTokenRequest",
            "WebSettings",
            "CategoryRule",
        ] {
            match schemas.get_mut(schema) {
                Some(Value::Object(s)) => forbid_nul_within(s),
                _ => problems.push(format!("no schema {schema}")),
            }
        }
    }
}

/// The service loop's request schemas: kinds, channels and states as enums, text lengths, and
/// the ranges the store checks.
fn constrain_service_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    use patron_store::tickets::{CHANNELS, KINDS, STATUSES};
    let s = "/components/schemas";
    let not_blank = not_blank();
    let text = |max: u64| json!({ "pattern": not_blank, "maxLength": max });
    let optional = |max: u64| json!({ "pattern": NO_NUL, "maxLength": max });
    let p = format!("{s}/NewTicket/properties");
    merge(doc, &format!("{p}/kind"), enumeration(&KINDS, false), problems);
    merge(doc, &format!("{p}/channel"), enumeration(&CHANNELS, false), problems);
    merge(doc, &format!("{p}/subject"), text(200), problems);
    merge(doc, &format!("{p}/body"), optional(20_000), problems);
    for f in ["category", "department", "store"] {
        merge(doc, &format!("{p}/{f}"), optional(100), problems);
    }
    let p = format!("{s}/Transition/properties");
    merge(doc, &format!("{p}/to"), enumeration(&STATUSES, false), problems);
    merge(doc, &format!("{p}/root_cause"), optional(100), problems);
    merge(doc, &format!("{p}/note"), optional(20_000), problems);
    let p = format!("{s}/NewComment/properties");
    merge(doc, &format!("{p}/body"), text(20_000), problems);
    merge(doc, &format!("{p}/attachments"), json!({ "maxItems": 20 }), problems);
    let p = format!("{s}/Attachment/properties");
    merge(doc, &format!("{p}/name"), text(255), problems);
    merge(doc, &format!("{p}/content_type"), optional(2000), problems);
    merge(doc, &format!("{p}/url"), optional(2000), problems);
    merge(doc, &format!("{s}/NewCompensation/properties/reason"), text(500), problems);
    merge(doc, &format!("{s}/Assignment/properties/department"), optional(100), problems);
    merge(doc, &format!("{s}/ConfirmationAnswer/properties/comment"), optional(2000), problems);
    let hhmm = "^([01][0-9]|2[0-3]):[0-5][0-9]$";
    merge(
        doc,
        &format!("{s}/BusinessCalendar/properties/weekdays"),
        json!({ "minItems": 7, "maxItems": 7, "items": { "anyOf": [{ "type": "null" }, { "type": "array", "minItems": 2, "maxItems": 2, "items": { "type": "string", "pattern": hhmm } }] } }),
        problems,
    );
    let p = format!("{s}/BusinessCalendar/properties");
    merge(doc, &format!("{p}/holidays"), json!({ "maxItems": 5000 }), problems);
    merge(doc, &format!("{p}/workdays"), json!({ "maxItems": 5000 }), problems);
    merge(
        doc,
        &format!("{s}/PolicyInput/properties/premium"),
        json!({ "maxItems": 20, "items": { "type": "string", "pattern": not_blank, "maxLength": 50 } }),
        problems,
    );
    let p = format!("{s}/ServiceSettings/properties");
    merge(doc, &format!("{p}/confirmation_days"), json!({ "minimum": 1, "maximum": 365 }), problems);
    merge(doc, &format!("{p}/warning_minutes"), json!({ "minimum": 0, "maximum": 1440 }), problems);
    merge(doc, &format!("{p}/complaint_target_per_1000"), json!({ "minimum": 0 }), problems);
    for list in ["root_causes", "churn_reasons"] {
        merge(
            doc,
            &format!("{p}/{list}"),
            json!({ "minItems": 1, "maxItems": 200, "items": { "type": "string", "pattern": not_blank, "maxLength": 100 } }),
            problems,
        );
    }
    if let Some(schemas) = doc.pointer_mut(s).and_then(Value::as_object_mut) {
        for schema in [
            "NewTicket",
            "Transition",
            "NewComment",
            "Attachment",
            "NewCompensation",
            "Assignment",
            "ConfirmationAnswer",
            "PolicyInput",
            "ServiceSettings",
        ] {
            match schemas.get_mut(schema) {
                Some(Value::Object(s)) => forbid_nul_within(s),
                _ => problems.push(format!("no schema {schema}")),
            }
        }
    }
}

/// Surveys, their invitations and answers, churn reasons.
fn constrain_survey_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    use patron_store::surveys::{KINDS, QUESTION_TYPES, TRIGGERS};
    let s = "/components/schemas";
    let not_blank = not_blank();
    let text = |max: u64| json!({ "pattern": not_blank, "maxLength": max });
    let optional = |max: u64| json!({ "pattern": NO_NUL, "maxLength": max });
    let key = json!({ "pattern": "^[a-z0-9_]{1,40}$" });
    let p = format!("{s}/NewSurvey/properties");
    merge(doc, &format!("{p}/name"), text(200), problems);
    merge(doc, &format!("{p}/kind"), enumeration(&KINDS, false), problems);
    merge(doc, &format!("{p}/questions"), json!({ "minItems": 1, "maxItems": 30 }), problems);
    merge(doc, &format!("{p}/recontact_days"), json!({ "minimum": 0, "maximum": 3650 }), problems);
    merge(doc, &format!("{p}/expires_days"), json!({ "minimum": 1, "maximum": 365 }), problems);
    let p = format!("{s}/Question/properties");
    merge(doc, &format!("{p}/key"), key.clone(), problems);
    merge(doc, &format!("{p}/type"), enumeration(&QUESTION_TYPES, false), problems);
    merge(doc, &format!("{p}/text"), optional(500), problems);
    merge(
        doc,
        &format!("{p}/options"),
        json!({ "maxItems": 20, "items": { "type": "string", "pattern": not_blank, "maxLength": 100 } }),
        problems,
    );
    let p = format!("{s}/Trigger/properties");
    merge(doc, &format!("{p}/on"), enumeration(&TRIGGERS, false), problems);
    merge(doc, &format!("{p}/days"), json!({ "minimum": 0, "maximum": 90 }), problems);
    merge(doc, &format!("{p}/every_days"), json!({ "minimum": 1, "maximum": 365 }), problems);
    merge(doc, &format!("{p}/segment"), text(100), problems);
    let p = format!("{s}/SurveyPatch/properties");
    merge(doc, &format!("{p}/name"), optional(200), problems);
    merge(doc, &format!("{p}/recontact_days"), json!({ "minimum": 0, "maximum": 3650 }), problems);
    let p = format!("{s}/InvitationRequest/properties");
    merge(doc, &format!("{p}/customer_ids"), json!({ "minItems": 1, "maxItems": 10000 }), problems);
    merge(doc, &format!("{p}/segment"), text(100), problems);
    merge(doc, &format!("{s}/AnswerInput/properties/answers"), json!({ "minItems": 1, "maxItems": 30 }), problems);
    merge(doc, &format!("{s}/AnswerValue/properties/question"), key, problems);
    let p = format!("{s}/ChurnReasonInput/properties");
    merge(doc, &format!("{p}/reason"), text(100), problems);
    merge(doc, &format!("{p}/source"), json!({ "pattern": "^(call|ticket:[0-9]{1,18}|survey:[0-9]{1,18})$" }), problems);
    merge(doc, &format!("{p}/note"), optional(2000), problems);
    if let Some(schemas) = doc.pointer_mut(s).and_then(Value::as_object_mut) {
        for schema in
            ["NewSurvey", "Question", "Trigger", "SurveyPatch", "InvitationRequest", "AnswerInput", "AnswerValue", "ChurnReasonInput"]
        {
            match schemas.get_mut(schema) {
                Some(Value::Object(s)) => forbid_nul_within(s),
                _ => problems.push(format!("no schema {schema}")),
            }
        }
    }
}

/// Webhooks: the URL, event patterns and secret exactly as `patron_store::webhooks` checks them.
fn constrain_webhook_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    let s = "/components/schemas";
    let url = json!({ "pattern": webhook_url_pattern(), "maxLength": 2000 });
    let events = json!({ "minItems": 1, "maxItems": 50, "items": { "type": "string", "pattern": WEBHOOK_EVENT } });
    merge(doc, &format!("{s}/NewWebhook/properties/url"), url.clone(), problems);
    merge(doc, &format!("{s}/NewWebhook/properties/events"), events.clone(), problems);
    merge(doc, &format!("{s}/NewWebhook/properties/secret"), json!({ "pattern": r"^[^\x00-\x1F\x7F-\x9F]{16,200}$" }), problems);
    merge(doc, &format!("{s}/WebhookPatch/properties/url"), url, problems);
    merge(doc, &format!("{s}/WebhookPatch/properties/events"), events, problems);
}

/// A custom role's name: letters (ASCII or CJK ideographs), digits, `_` and `-`, 1 to 50. The
/// store takes any Unicode letter; the API names the two scripts its users write role names in.
pub const ROLE_NAME: &str = r"^[0-9A-Za-z_\u4E00-\u9FFF-]{1,50}$";

/// The longest password the API takes: hashing cost grows with the input, and no passphrase
/// needs more.
pub const MAX_PASSWORD_CHARS: u64 = 1000;

/// Units, roles and users (issue 21) as `patron_store::access` and `patron_store::users` check them.
fn constrain_access_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    use patron_store::access::units::KINDS;
    use patron_store::access::Permission;
    use patron_store::users::MIN_PASSWORD_LEN;
    let s = "/components/schemas";
    let not_blank = not_blank();
    let text = |max: u64| json!({ "pattern": not_blank, "maxLength": max });
    let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    let permissions = json!({ "maxItems": 200, "items": { "type": "string", "enum": names } });
    let password = json!({ "minLength": MIN_PASSWORD_LEN, "maxLength": MAX_PASSWORD_CHARS, "pattern": NO_NUL });
    let unit_ids = json!({ "maxItems": 1000 });
    for (schema, nullable) in [("NewUnit", false), ("UnitPatch", true)] {
        let p = format!("{s}/{schema}/properties");
        merge(doc, &format!("{p}/name"), text(200), problems);
        merge(doc, &format!("{p}/code"), text(100), problems);
        merge(doc, &format!("{p}/kind"), enumeration(KINDS, nullable), problems);
    }
    merge(doc, &format!("{s}/RoleInput/properties/name"), json!({ "pattern": ROLE_NAME }), problems);
    merge(doc, &format!("{s}/RoleInput/properties/permissions"), permissions.clone(), problems);
    merge(doc, &format!("{s}/RolePermissions/properties/permissions"), permissions, problems);
    let p = format!("{s}/NewUser/properties");
    merge(doc, &format!("{p}/email"), json!({ "pattern": email(), "maxLength": 320 }), problems);
    merge(doc, &format!("{p}/name"), text(200), problems);
    merge(doc, &format!("{p}/role"), json!({ "pattern": ROLE_NAME }), problems);
    merge(doc, &format!("{p}/unit_ids"), unit_ids.clone(), problems);
    merge(doc, &format!("{p}/password"), password.clone(), problems);
    let p = format!("{s}/UserPatch/properties");
    merge(doc, &format!("{p}/name"), text(200), problems);
    merge(doc, &format!("{p}/role"), json!({ "pattern": ROLE_NAME }), problems);
    merge(doc, &format!("{p}/unit_ids"), unit_ids, problems);
    merge(doc, &format!("{s}/PasswordReset/properties/password"), password, problems);
    // Two-factor policy and single sign-on (issue 21 §4): role names as above (that they exist
    // is beyond the schema), the provider's strings bounded.
    merge(
        doc,
        &format!("{s}/TwoFactorPolicy/properties/required_roles"),
        json!({ "maxItems": 200, "items": { "type": "string", "pattern": ROLE_NAME } }),
        problems,
    );
    let p = format!("{s}/SsoSettingsInput/properties");
    let provider_text = json!({ "pattern": NO_NUL, "maxLength": 500 });
    merge(doc, &format!("{p}/issuer"), provider_text.clone(), problems);
    merge(doc, &format!("{p}/client_id"), provider_text.clone(), problems);
    merge(doc, &format!("{p}/client_secret"), provider_text, problems);
    merge(doc, &format!("{p}/default_role"), json!({ "pattern": ROLE_NAME }), problems);
    merge(
        doc,
        &format!("{s}/MaskingSettings/properties/roles"),
        json!({ "maxProperties": 200, "propertyNames": { "pattern": ROLE_NAME } }),
        problems,
    );
    nullable_masked_fields(doc);
}

/// Tasks and journeys (issue 12 §6) as `patron_store::tasks` and `patron_store::journeys` check them.
fn constrain_journey_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    use patron_store::journeys::{EVENT_KINDS, MAX_STEPS};
    let s = "/components/schemas";
    let title = json!({ "pattern": not_blank(), "maxLength": 200 });
    merge(doc, &format!("{s}/NewTask/properties/title"), title.clone(), problems);
    merge(doc, &format!("{s}/TaskPatch/properties/title"), title.clone(), problems);
    let kinds: Vec<&str> = EVENT_KINDS.iter().map(|k| k.0).collect();
    let p = format!("{s}/NewJourney/properties");
    merge(doc, &format!("{p}/name"), title, problems);
    merge(doc, &format!("{p}/trigger"), enumeration(&kinds, false), problems);
    merge(doc, &format!("{p}/goal"), enumeration(&kinds, true), problems);
    merge(doc, &format!("{p}/steps"), json!({ "minItems": 1, "maxItems": MAX_STEPS }), problems);
}

/// Account management (issue 19 §1–§3) as `patron_store::accounts` checks it.
fn constrain_account_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    use patron_store::accounts::{tasks::OUTCOMES, STAGES};
    use patron_store::service::policies::TIERS;
    let s = "/components/schemas";
    let text = |max: usize| json!({ "pattern": NO_NUL, "maxLength": max });
    merge(doc, &format!("{s}/StageInput/properties/reason"), json!({ "pattern": not_blank(), "maxLength": 2000 }), problems);
    merge(doc, &format!("{s}/StageInput/properties/stage"), enumeration(&STAGES, false), problems);
    merge(doc, &format!("{s}/Reassignment/properties/note"), text(4000), problems);
    merge(doc, &format!("{s}/Reassignment/properties/segment"), json!({ "pattern": not_blank(), "maxLength": 100 }), problems);
    merge(
        doc,
        &format!("{s}/Reassignment/properties/customer_ids"),
        json!({ "minItems": 1, "items": { "type": "integer", "format": "int64", "minimum": 1 } }),
        problems,
    );
    merge(doc, &format!("{s}/NewReview/properties/note"), text(4000), problems);
    let questions = ["responsiveness", "price", "delivery", "obligations", "complaints", "contract", "sentiment"];
    merge(
        doc,
        &format!("{s}/NewReview/properties/notes"),
        json!({ "propertyNames": { "enum": questions }, "additionalProperties": { "type": "string", "pattern": NO_NUL, "maxLength": 1000 } }),
        problems,
    );
    merge(doc, &format!("{s}/TieInput/properties/shared_interests"), text(500), problems);
    merge(doc, &format!("{s}/TaskOutcome/properties/note"), text(2000), problems);
    merge(doc, &format!("{s}/TaskOutcome/properties/outcome"), enumeration(&OUTCOMES, false), problems);
    let p = format!("{s}/AccountSettings/properties");
    merge(
        doc,
        &format!("{p}/meaningful_kinds"),
        json!({ "minItems": 1, "maxItems": 20, "items": { "enum": patron_store::values::INTERACTION_KINDS } }),
        problems,
    );
    merge(
        doc,
        &format!("{p}/review_days"),
        json!({ "propertyNames": { "enum": TIERS }, "additionalProperties": { "type": "integer", "minimum": 1, "maximum": 3650 } }),
        problems,
    );
    merge(doc, &format!("{p}/review_share"), json!({ "minimum": 0, "maximum": 1 }), problems);
    merge(doc, &format!("{p}/health_drop_alert"), json!({ "minimum": 0, "maximum": 100 }), problems);
    merge(doc, &format!("{p}/digest"), enumeration(&patron_store::accounts::DIGEST_PERIODS, false), problems);
    merge(
        doc,
        &format!("{p}/stage_guidance"),
        json!({ "propertyNames": { "enum": STAGES }, "additionalProperties": { "type": "string", "pattern": NO_NUL, "maxLength": 2000 } }),
        problems,
    );
    for w in questions {
        merge(doc, &format!("{s}/ReviewWeights/properties/{w}"), json!({ "minimum": 0, "maximum": 100 }), problems);
    }
}

/// Fulfilment steps and account plans (issue 19 §4, §5) as `patron_store::fulfilment` and
/// `patron_store::plans` check them.
fn constrain_fulfilment_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    use patron_store::fulfilment::STEPS;
    use patron_store::plans::KPI_KINDS;
    let s = "/components/schemas";
    let p = format!("{s}/NewStep/properties");
    merge(doc, &format!("{p}/step"), enumeration(&STEPS, false), problems);
    merge(doc, &format!("{p}/note"), json!({ "pattern": NO_NUL, "maxLength": 2000 }), problems);
    merge(
        doc,
        &format!("{p}/promised_at"),
        json!({ "pattern": r"^(19[0-9]{2}|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]))?$" }),
        problems,
    );
    merge(
        doc,
        &format!("{s}/FulfilmentSettings/properties/steps"),
        json!({ "minItems": 1, "maxItems": 10, "items": enumeration(&STEPS, false) }),
        problems,
    );
    let p = format!("{s}/NewPlan/properties");
    merge(doc, &format!("{p}/goals"), json!({ "pattern": not_blank(), "maxLength": 10000 }), problems);
    for f in ["expectations_ours", "expectations_theirs"] {
        merge(doc, &format!("{p}/{f}"), json!({ "pattern": NO_NUL, "maxLength": 10000 }), problems);
    }
    merge(doc, &format!("{p}/kpis"), json!({ "minItems": 1, "maxItems": 20 }), problems);
    merge(doc, &format!("{p}/owner_ids"), json!({ "maxItems": 20 }), problems);
    merge(doc, &format!("{p}/window_days"), json!({ "minimum": 7, "maximum": 730 }), problems);
    merge(doc, &format!("{p}/scorecard_days"), json!({ "minimum": 1, "maximum": 365 }), problems);
    let p = format!("{s}/NewKpi/properties");
    merge(doc, &format!("{p}/name"), json!({ "pattern": not_blank(), "maxLength": 100 }), problems);
    merge(doc, &format!("{p}/kind"), enumeration(&KPI_KINDS, false), problems);
    merge(doc, &format!("{p}/target"), json!({ "minimum": 0, "maximum": 8760 }), problems);
}

/// The cost-to-serve settings (issue 13 §7) as `patron_store::cost_to_serve` checks them.
fn constrain_cost_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    let p = "/components/schemas/CostSettings/properties";
    merge(
        doc,
        &format!("{p}/message_cents"),
        json!({
            "propertyNames": { "enum": ["email", "sms", "wechat", "mail"] },
            "additionalProperties": { "type": "integer", "minimum": 0, "maximum": 1_000_000 }
        }),
        problems,
    );
    merge(
        doc,
        &format!("{p}/category_margin_rates"),
        json!({
            "maxProperties": 1000,
            "propertyNames": { "pattern": not_blank(), "maxLength": 200 },
            "additionalProperties": { "type": "number", "minimum": 0, "maximum": 1 }
        }),
        problems,
    );
}

/// The customer, order and segment documents' personal and money members may be `null` for a
/// role that does not see them (`patron_store::access::masking`): their response schemas say so.
fn nullable_masked_fields(doc: &mut Value) {
    use patron_store::access::masking::{MONEY_FIELDS, PERSONAL_FIELDS};
    const MASKED_SCHEMAS: &[&str] = &[
        "Customer",
        "CustomerListItem",
        "Customer360",
        "OrderStats",
        "Order",
        "Contact",
        "DuplicateCandidate",
        "SegmentMember",
        "ScoreRow",
    ];
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return };
    for name in MASKED_SCHEMAS {
        let Some(props) = schemas.get_mut(*name).and_then(|s| s.get_mut("properties")).and_then(Value::as_object_mut) else { continue };
        for (field, schema) in props.iter_mut() {
            if !PERSONAL_FIELDS.contains(&field.as_str()) && !MONEY_FIELDS.contains(&field.as_str()) {
                continue;
            }
            let Some(obj) = schema.as_object_mut() else { continue };
            match obj.get_mut("type") {
                Some(Value::String(t)) if t != "null" => {
                    let t = t.clone();
                    obj.insert("type".into(), json!([t, "null"]));
                }
                Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => types.push(json!("null")),
                _ => {}
            }
        }
    }
}

/// Templates and the engagement settings as `patron_store::engagement` checks them.
fn constrain_engagement_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    let s = "/components/schemas";
    let not_blank = not_blank();
    let p = format!("{s}/EngagementSettings/properties");
    merge(doc, &format!("{p}/global_control_percent"), json!({ "minimum": 0, "maximum": 50 }), problems);
    merge(doc, &format!("{p}/global_control_salt"), json!({ "minLength": 1, "maxLength": 200, "pattern": NO_NUL }), problems);
    merge(doc, &format!("{p}/cap_7_days"), json!({ "minimum": 0, "maximum": 1000 }), problems);
    merge(doc, &format!("{p}/cap_30_days"), json!({ "minimum": 0, "maximum": 1000 }), problems);
    merge(doc, &format!("{p}/rate_per_second"), json!({ "exclusiveMinimum": 0, "maximum": 100_000 }), problems);
    merge(doc, &format!("{p}/max_attempts"), json!({ "minimum": 1, "maximum": 50 }), problems);
    let time = json!({ "pattern": r"^(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?$" });
    merge(doc, &format!("{p}/quiet_start"), time.clone(), problems);
    merge(doc, &format!("{p}/quiet_end"), time, problems);
    merge(
        doc,
        &format!("{p}/generic_greetings"),
        json!({ "maxItems": 500, "items": { "type": "string", "pattern": not_blank, "maxLength": 100 } }),
        problems,
    );
    if let Some(schemas) = doc.pointer_mut(s).and_then(Value::as_object_mut) {
        for schema in ["NewTemplate", "EngagementSettings"] {
            match schemas.get_mut(schema) {
                Some(Value::Object(s)) => forbid_nul_within(s),
                _ => problems.push(format!("no schema {schema}")),
            }
        }
    }
}

/// Campaigns: name and segment as `patron_store::engagement::campaigns` checks them.
fn constrain_campaign_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    let s = "/components/schemas/NewCampaign/properties";
    merge(doc, &format!("{s}/name"), json!({ "pattern": not_blank(), "maxLength": 200 }), problems);
    merge(doc, &format!("{s}/segment"), json!({ "pattern": not_blank(), "maxLength": 4000 }), problems);
}

/// Customer events (issue 19 §6) as `patron_store::customer_events` checks them. Beyond the
/// schema (`.ci/contract_hooks.py`): a start from 2000 to five years ahead, an end after the
/// start, a place or a link, a survey and a segment that exist, a capacity not below the seats
/// taken.
fn constrain_customer_event_schemas(doc: &mut Value, problems: &mut Vec<String>) {
    use patron_store::customer_events::KINDS;
    let link = format!(r#"https?://[^\x00-\x20\x7F-\x9F{WS}"<>][^\x00-\x20\x7F-\x9F{WS}"<>]*"#);
    for (schema, blank_link) in [("NewCustomerEvent", false), ("CustomerEventPatch", true)] {
        let p = format!("/components/schemas/{schema}/properties");
        merge(doc, &format!("{p}/title"), json!({ "pattern": not_blank(), "maxLength": 200 }), problems);
        merge(doc, &format!("{p}/kind"), enumeration(&KINDS, true), problems);
        merge(doc, &format!("{p}/description"), json!({ "pattern": NO_NUL, "maxLength": 10000 }), problems);
        merge(doc, &format!("{p}/place"), json!({ "pattern": NO_NUL, "maxLength": 500 }), problems);
        // On a new event the link's form is left to the hook (a second pattern on top of the
        // required date-time's made the generator give up on valid bodies).
        if blank_link {
            merge(doc, &format!("{p}/link"), json!({ "pattern": format!("^(?:{link})?$"), "maxLength": 2000 }), problems);
        } else {
            merge(doc, &format!("{p}/link"), json!({ "pattern": NO_NUL, "maxLength": 2000 }), problems);
        }
    }
    merge(doc, "/components/schemas/CustomerEventPatch/properties/status", enumeration(&["scheduled", "cancelled"], true), problems);
    merge(doc, "/components/schemas/InviteRequest/properties/segment", json!({ "pattern": not_blank(), "maxLength": 4000 }), problems);
}

/// An event type, a `noun.*` prefix or `*`.
pub const WEBHOOK_EVENT: &str = r"^(\*|[a-z0-9_]{1,40}\.(\*|[a-z0-9_]{1,40}))$";

/// `http://` or `https://`, a host part, no white space or control characters.
fn webhook_url_pattern() -> String {
    format!(r"^https?://[^/\x00-\x20\x7F-\x9F{WS}][^\x00-\x20\x7F-\x9F{WS}]*$")
}

/// The dates a client may send (issue 14 §2.8): 1900-01-01 to 2100-01-01 as written.
pub const DATE_RANGE: &str = r"^(?:(?:19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}|2100-01-01)$";

/// The times a client may send: their date, as written, from 1900-01-01 to 2100-01-01.
pub const TIME_RANGE: &str = r"^(?:(?:19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}|2100-01-01)[Tt]";

/// Every `date` and `date-time` string a client sends (parameters, request bodies and the
/// components they refer to) gets the pattern of its range, so that the document says what the
/// server takes. Responses keep plain formats: a period the server derives may start before
/// 1900-01-01 in UTC (the first month of 1900 in Shanghai's local mean time).
fn bound_dates(doc: &mut Value) {
    let mut refs = std::collections::BTreeSet::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for op in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|ops| ops.values_mut()) {
            for part in ["parameters", "requestBody"] {
                if let Some(v) = op.get_mut(part) {
                    collect_refs(v, &mut refs);
                    bound_dates_in(v);
                }
            }
        }
    }
    let mut todo: Vec<String> = refs.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        let mut found = std::collections::BTreeSet::new();
        if let Some(schema) = doc.pointer(&format!("/components/schemas/{name}")) {
            collect_refs(schema, &mut found);
        }
        for f in found {
            if refs.insert(f.clone()) {
                todo.push(f);
            }
        }
    }
    for name in refs {
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            bound_dates_in(schema);
        }
    }
}

/// The component schemas `v` refers to (`#/components/schemas/NAME`).
fn collect_refs(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(name) = map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/")) {
                out.insert(name.to_owned());
            }
            map.values().for_each(|c| collect_refs(c, out));
        }
        Value::Array(items) => items.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

/// [`bound_dates`] within one schema (not following references).
fn bound_dates_in(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let pattern = match map.get("format").and_then(Value::as_str) {
                Some("date") => Some(DATE_RANGE),
                Some("date-time") => Some(TIME_RANGE),
                _ => None,
            };
            if let Some(p) = pattern {
                if !map.contains_key("pattern") {
                    map.insert("pattern".into(), json!(p));
                }
            }
            for child in map.values_mut() {
                bound_dates_in(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(bound_dates_in),
        _ => {}
    }
}

/// A string schema without a pattern, enum or format gets `NO_NUL`.
fn forbid_nul(schema: &mut Map<String, Value>) {
    let is_string = match schema.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    if is_string && !schema.contains_key("pattern") && !schema.contains_key("enum") && !schema.contains_key("format") {
        schema.insert("pattern".into(), json!(NO_NUL));
    }
}

fn forbid_nul_within(schema: &mut Map<String, Value>) {
    forbid_nul(schema);
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for p in props.values_mut().filter_map(Value::as_object_mut) {
            forbid_nul_within(p);
        }
    }
    if let Some(Value::Object(items)) = schema.get_mut("items") {
        forbid_nul_within(items);
    }
    if let Some(Value::Object(extra)) = schema.get_mut("additionalProperties") {
        forbid_nul_within(extra);
    }
}

/// The error responses, once, for operations to refer to.
fn add_responses(doc: &mut Value) {
    let error = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } } });
    let mut unauthorized = error("No credentials, or bad ones (send `Authorization: Bearer <token>`).");
    unauthorized["headers"] = json!({ "WWW-Authenticate": { "description": "`Bearer`", "schema": { "type": "string" } } });
    let mut busy = error("The database could not take the request now (code `busy`: a long write holds it, or a lock, deadlock or serialisation failure; code `timeout`: a statement ran past its time limit, such as a segment count over 30 s); nothing was changed. Try again after `Retry-After` seconds.");
    busy["headers"] = json!({ "Retry-After": { "description": "Seconds to wait.", "schema": { "type": "integer" } } });
    let mut too_many = error("Too many requests from this address; try again after `Retry-After` seconds.");
    too_many["headers"] = json!({ "Retry-After": { "description": "Seconds to wait.", "schema": { "type": "integer" } } });
    let responses = json!({
        "BadRequest": error("A malformed request: bad JSON or multipart, or a path or query value that is not valid (the `field` names it)."),
        "Unauthorized": unauthorized,
        "Forbidden": error("Your role or portfolio does not allow this."),
        "NotFound": error("No such record."),
        "Conflict": error("A unique value is taken, or the record cannot change this way."),
        "PayloadTooLarge": error("The body is larger than the limit (10 MiB for JSON, the upload limit for imports)."),
        "UriTooLong": error("The request target (path and query) is longer than 8 KiB."),
        "UnsupportedMediaType": error("The body's content type is not the one this operation takes."),
        "UnprocessableContent": error("A value is not valid, or refers to a record that does not exist; the `field` names it (e.g. `orders[1].customer_id`)."),
        "HeadersTooLarge": error("The request's headers are larger than 32 KiB."),
        "Busy": busy,
        "Gone": error("The link has expired."),
        "TooManyRequests": too_many,
    });
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert("responses".into(), responses);
    }
}

/// Every operation: a unique id, security (none for the public ones) and every status it can
/// answer by its kind. Handlers' own annotations name the rest (403, 409, success codes).
fn complete_operations(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, ops) in paths.iter_mut() {
        let Some(ops) = ops.as_object_mut() else { continue };
        for (method, op) in ops.iter_mut() {
            let Some(op) = op.as_object_mut() else { continue };
            let slug: String = format!("{method}{}", path.trim_start_matches("/api/v1"))
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
                .split('_')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("_");
            op.insert("operationId".into(), json!(slug));
            let public = PUBLIC_PATHS.contains(&path.as_str());
            let params: Vec<Value> = op.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
            let has = |place: &str| params.iter().any(|p| p["in"] == place);
            let body = op
                .get("requestBody")
                .and_then(|b| b.get("content"))
                .and_then(Value::as_object)
                .map(|c| c.keys().cloned().collect::<Vec<_>>());
            let mut add: Vec<(&str, &str)> = vec![("414", "UriTooLong"), ("431", "HeadersTooLarge")];
            if public {
                op.insert("security".into(), json!([]));
            } else if LINK_PATHS.contains(&path.as_str()) {
                // Opened by customers through a link: the token is the credential, and every
                // address is rate-limited.
                op.insert("security".into(), json!([]));
                add.extend([("404", "NotFound"), ("410", "Gone"), ("429", "TooManyRequests")]);
            } else {
                add.push(("401", "Unauthorized"));
                if method != "get" {
                    // A read-only token may not write.
                    add.push(("403", "Forbidden"));
                }
            }
            if has("path") {
                add.extend([("400", "BadRequest"), ("404", "NotFound")]);
            }
            if has("query") {
                add.push(("400", "BadRequest"));
            }
            if let Some(types) = &body {
                add.extend([("400", "BadRequest"), ("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType")]);
                if types.iter().any(|t| t == "application/json") {
                    add.push(("422", "UnprocessableContent"));
                }
            }
            if !NO_DATABASE.contains(&(method.as_str(), path.as_str())) {
                add.push(("503", "Busy"));
            }
            let responses = op.entry("responses").or_insert_with(|| json!({}));
            if let Some(responses) = responses.as_object_mut() {
                // An annotated error answer becomes the shared response of its status (with its
                // description and headers); an answer without a description gets one.
                for (status, r) in responses.iter_mut() {
                    let error_only = r.pointer("/content/application~1json/schema/$ref").and_then(Value::as_str)
                        == Some("#/components/schemas/ErrorBody");
                    match shared_response(status) {
                        Some(name) if error_only => *r = json!({ "$ref": format!("#/components/responses/{name}") }),
                        _ if r.get("description").and_then(Value::as_str).is_none_or(str::is_empty) => {
                            r["description"] = json!(match status.as_str() {
                                "204" => "Done; no content.",
                                "201" => "Created.",
                                _ => "Success.",
                            });
                        }
                        _ => {}
                    }
                }
                for (status, name) in add {
                    responses.entry(status).or_insert_with(|| json!({ "$ref": format!("#/components/responses/{name}") }));
                }
            }
        }
    }
}

/// Links from a created record to the operations on it (OpenAPI links: clients, and
/// schemathesis's stateful phase, follow them).
fn add_links(doc: &mut Value, problems: &mut Vec<String>) {
    let links = |pointer: &str, param: &str, from: &str, ops: &[&str]| {
        let mut map = Map::new();
        for op in ops {
            map.insert(op.to_string(), json!({ "operationId": op, "parameters": { param: format!("$response.body#/{from}") } }));
        }
        (pointer.to_owned(), Value::Object(map))
    };
    for (pointer, map) in [
        links(
            "/paths/~1api~1v1~1customers/post/responses/201",
            "id",
            "id",
            &[
                "get_customers_id",
                "patch_customers_id",
                "post_customers_id_contacts",
                "post_customers_id_notes",
                "get_customers_id_timeline",
                "get_customers_id_duplicates",
                "delete_customers_id",
            ],
        ),
        links(
            "/paths/~1api~1v1~1segments/post/responses/201",
            "key",
            "key",
            &["get_segments_key", "put_segments_key", "get_segments_key_members", "get_segments_key_export", "delete_segments_key"],
        ),
    ] {
        let ids: Vec<String> = map.as_object().into_iter().flat_map(|m| m.keys().cloned()).collect();
        for id in ids {
            let exists = doc["paths"]
                .as_object()
                .into_iter()
                .flat_map(|p| p.values())
                .filter_map(Value::as_object)
                .flat_map(|o| o.values())
                .any(|op| op["operationId"] == id.as_str());
            if !exists {
                problems.push(format!("link to unknown operation {id}"));
            }
        }
        match doc.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            Some(response) => {
                response.insert("links".into(), map);
            }
            None => problems.push(format!("no response at {pointer}")),
        }
    }
}

fn shared_response(status: &str) -> Option<&'static str> {
    Some(match status {
        "400" => "BadRequest",
        "401" => "Unauthorized",
        "403" => "Forbidden",
        "404" => "NotFound",
        "409" => "Conflict",
        "413" => "PayloadTooLarge",
        "414" => "UriTooLong",
        "415" => "UnsupportedMediaType",
        "422" => "UnprocessableContent",
        "431" => "HeadersTooLarge",
        "503" => "Busy",
        "410" => "Gone",
        "429" => "TooManyRequests",
        _ => return None,
    })
}

/// Endpoints that need no token.
pub const PUBLIC_PATHS: [&str; 2] = ["/healthz", "/api/v1/openapi.json"];

/// Endpoints customers reach through a link (no login; rate-limited per address).
pub const LINK_PATHS: [&str; 3] =
    ["/api/v1/public/confirmations/{token}", "/api/v1/public/surveys/{token}", "/api/v1/public/plans/{token}"];

/// Operations that never touch the database (and so are never busy).
const NO_DATABASE: [(&str, &str); 2] = [("get", "/api/v1/openapi.json"), ("get", "/api/v1/segments/fields")];

// ---- checking requests against the document -------------------------------------------------

/// The operation at `matched` (axum's route template, e.g. `/api/v1/customers/{id}`).
fn operation(method: &Method, matched: &str) -> Option<&'static Value> {
    document().get("paths")?.get(matched)?.get(method.as_str().to_ascii_lowercase())
}

/// Holds a JSON body to its operation's schema. A batch is named after the collection
/// (`orders[1].total_cents`); a single object's fields by their names.
pub fn check_body(method: &Method, matched: Option<&str>, body: &Value) -> Result<(), ApiError> {
    let Some(op) = matched.and_then(|m| operation(method, m)) else { return Ok(()) };
    let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") else { return Ok(()) };
    let root = if body.is_array() { matched.and_then(|m| m.rsplit('/').next()).unwrap_or_default().to_owned() } else { String::new() };
    validate(schema, body, &root).map_err(|mut v| {
        // A batch of one names its fields as a single object does (as the store does).
        if body.as_array().is_some_and(|a| a.len() == 1) {
            v.field = v.field.strip_prefix(&format!("{root}[0]")).map(|f| f.trim_start_matches('.').to_owned()).unwrap_or(v.field);
        }
        // A body of the wrong shape (types, missing or unknown fields) is `invalid_json`, as
        // serde's refusals are; a value out of its bounds is `invalid`.
        let code = if v.kind == Kind::Other { "invalid" } else { "invalid_json" };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, v.message()).field(v.field)
    })
}

/// Holds a query string to its operation's parameters, and returns it with integers written as
/// integers (`limit=151.0` reads as 151, as JSON Schema reads a number with a zero fraction).
pub fn check_query(method: &Method, matched: Option<&str>, query: &str) -> Result<String, ApiError> {
    let Some(op) = matched.and_then(|m| operation(method, m)) else { return Ok(query.to_owned()) };
    let params: HashMap<&str, &Value> = op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| Some((p["name"].as_str()?, p.get("schema")?)))
        .collect();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", format!("malformed query string: {e}")))?;
    let mut out = Vec::with_capacity(pairs.len());
    for (name, text) in pairs {
        let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", m).field(name.clone());
        let Some(schema) = params.get(name.as_str()) else {
            return Err(bad(format!("unknown query parameter {name:?}")));
        };
        let value = if has_type(schema, "integer") {
            match parse_integer(&text) {
                Some(n) => json!(n),
                None => return Err(bad(format!("{name} must be an integer, not {text:?}"))),
            }
        } else if has_type(schema, "boolean") {
            match text.as_str() {
                "true" => json!(true),
                "false" => json!(false),
                _ => return Err(bad(format!("{name} must be true or false, not {text:?}"))),
            }
        } else {
            json!(text)
        };
        validate(schema, &value, &name).map_err(|v| bad(v.message()))?;
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        out.push((name, text));
    }
    serde_urlencoded::to_string(&out).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string()))
}

/// Holds path parameters to the operation's, and returns them as JSON for the handler's type: a
/// lone parameter as its value, several as an array in path order. An integer parameter may be
/// written with a zero fraction (`124.0`). `None` for a route the document does not describe
/// (the web UI's).
pub fn check_path(method: &Method, matched: Option<&str>, params: &[(String, String)]) -> Result<Option<Value>, ApiError> {
    let Some(op) = matched.and_then(|m| operation(method, m)) else { return Ok(None) };
    let mut values = Vec::with_capacity(params.len());
    for (name, text) in params {
        let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", m).field(name.clone());
        let schema = op
            .get("parameters")
            .and_then(Value::as_array)
            .and_then(|ps| ps.iter().find(|p| p["in"] == "path" && p["name"] == name.as_str()))
            .and_then(|p| p.get("schema"));
        let value = match schema {
            Some(s) if has_type(s, "integer") => match parse_integer(text) {
                Some(n) => json!(n),
                None => return Err(bad(format!("{name} must be an integer, not {text:?}"))),
            },
            _ => json!(text),
        };
        if let Some(s) = schema {
            validate(s, &value, name).map_err(|v| bad(v.message()))?;
        }
        values.push(value);
    }
    Ok(Some(if values.len() == 1 { values.pop().unwrap_or_default() } else { Value::Array(values) }))
}

/// Holds a text part of a multipart form to its property in the named schema (400 otherwise:
/// the form could not be read as the document describes it).
pub fn check_form_text(schema: &str, field: &str, text: &str) -> Result<(), ApiError> {
    let Some(property) = document().pointer(&format!("/components/schemas/{schema}/properties/{field}")) else { return Ok(()) };
    if !has_type(property, "string") {
        return Ok(());
    }
    validate(property, &json!(text), field).map_err(|v| ApiError::bad_request(field, v.message()))
}

fn has_type(schema: &Value, t: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(ts)) => ts.iter().any(|x| x == t),
        _ => false,
    }
}

/// An integer written as text: `151`, or a number with a zero fraction (`151.0`, `1.51e2`), read
/// exactly (no detour through floating point).
pub fn parse_integer(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = format!("{whole}{fraction}");
    let shift = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    if shift < 0 {
        let cut = usize::try_from(-shift).ok()?;
        if cut > digits.len() {
            if digits.bytes().all(|b| b == b'0') {
                return Some(0);
            }
            return None;
        }
        let (kept, dropped) = digits.split_at(digits.len() - cut);
        if !dropped.bytes().all(|b| b == b'0') {
            return None;
        }
        digits = kept.to_owned();
    } else {
        if shift > 20 && digits.bytes().any(|b| b != b'0') {
            return None;
        }
        digits.extend(std::iter::repeat_n('0', usize::try_from(shift).ok()?.min(20)));
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    let magnitude: i128 = digits.parse().ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// Where a value broke its schema, and how.
#[derive(Debug)]
struct Violation {
    field: String,
    kind: Kind,
    problem: String,
}

/// What sort of rule a value broke (alternatives are told apart by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not of the type the schema names.
    Type,
    /// A required field is missing.
    Required,
    /// A field the schema does not know is there.
    Unknown,
    /// Anything else: enum, range, length, pattern, format.
    Other,
}

impl Violation {
    fn message(&self) -> String {
        if self.field.is_empty() {
            format!("the body {}", self.problem)
        } else {
            format!("{} {}", self.field, self.problem)
        }
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The schema a `$ref` names.
fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => document().pointer(pointer).unwrap_or(&Value::Null),
        None => schema,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    let actual = type_name(v);
    actual == t || (t == "number" && actual == "integer")
}

fn compiled(pattern: &str) -> Option<&'static regex::Regex> {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, &'static regex::Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().ok()?;
    if let Some(r) = map.get(pattern) {
        return Some(r);
    }
    // Patterns come from this module and utoipa, a handful in all: leaking each once is bounded.
    let r: &'static regex::Regex = Box::leak(Box::new(regex::Regex::new(pattern).ok()?));
    map.insert(pattern.to_owned(), r);
    Some(r)
}

/// The JSON Schema keywords this document uses, checked the way JSON Schema reads them (each
/// applies to values of its type only).
fn validate(schema: &Value, value: &Value, path: &str) -> Result<(), Violation> {
    let schema = resolve(schema);
    let fail = |kind: Kind, problem: String| Err(Violation { field: path.to_owned(), kind, problem });
    if let Some(types) = schema.get("type") {
        let ok = match types {
            Value::String(t) => type_matches(t, value),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_matches(t, value)),
            _ => true,
        };
        if !ok {
            let want: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            return fail(Kind::Type, format!("must be {}, not {}", want.join(" or "), type_name(value)));
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            let names: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
            return fail(Kind::Other, format!("must be one of {}", names.join(", ")));
        }
    }
    if let Some(Value::Array(parts)) = schema.get("allOf") {
        for part in parts {
            validate(part, value, path)?;
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = schema.get(key) {
            let mut errors = Vec::new();
            for b in branches {
                match validate(b, value, path) {
                    Ok(()) => {
                        errors.clear();
                        break;
                    }
                    Err(v) => errors.push(v),
                }
            }
            if errors.len() == branches.len() && !errors.is_empty() {
                // The branches of another shape say nothing; of the rest, a missing field of
                // each is "this one or that one", anything else is the answer.
                let fitting: Vec<Violation> = errors.into_iter().filter(|v| v.kind != Kind::Type || v.field != path).collect();
                if fitting.is_empty() {
                    return fail(Kind::Type, "does not have the shape of any alternative".into());
                }
                if fitting.iter().all(|v| v.kind == Kind::Required) {
                    let names: Vec<&str> = fitting.iter().map(|v| v.field.rsplit('.').next().unwrap_or_default()).collect();
                    return Err(Violation {
                        field: fitting[0].field.clone(),
                        kind: Kind::Required,
                        problem: format!("is required (or {})", names[1..].join(" or ")),
                    });
                }
                if let Some(v) = fitting.into_iter().find(|v| v.kind != Kind::Required) {
                    return Err(v);
                }
            }
        }
    }
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
            let (lo, hi, ex_hi) = (bound("minimum"), bound("maximum"), bound("exclusiveMaximum"));
            let out = lo.is_some_and(|l| x < l) || hi.is_some_and(|h| x > h) || ex_hi.is_some_and(|h| x >= h);
            if out {
                let range = match (schema.get("minimum"), schema.get("maximum"), schema.get("exclusiveMaximum")) {
                    (Some(l), Some(h), _) => format!("must be between {l} and {h}"),
                    (Some(l), None, Some(h)) => format!("must be at least {l} and less than {h}"),
                    (Some(l), None, None) => format!("must be at least {l}"),
                    (None, Some(h), _) => format!("must be at most {h}"),
                    (None, None, Some(h)) => format!("must be less than {h}"),
                    _ => "is out of range".into(),
                };
                return fail(Kind::Other, range);
            }
        }
        Value::String(s) => {
            let chars = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                if chars > max {
                    return fail(Kind::Other, format!("is longer than {max} characters"));
                }
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if chars < min {
                    return fail(Kind::Other, format!("is shorter than {min} characters"));
                }
            }
            match schema.get("format").and_then(Value::as_str) {
                Some("date") if !is_date(s) => return fail(Kind::Other, "must be a date, YYYY-MM-DD".into()),
                Some("date-time") if !is_date_time(s) => {
                    return fail(Kind::Other, "must be a time in RFC 3339, e.g. 2026-06-01T10:00:00Z".into())
                }
                _ => {}
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                if let Some(re) = compiled(pattern) {
                    if !re.is_match(s) {
                        return fail(Kind::Other, pattern_problem(pattern));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if items.len() as u64 > max {
                    return fail(Kind::Other, format!("has more than {max} items"));
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < min {
                    return fail(Kind::Other, if min == 1 { "must not be empty".into() } else { format!("has fewer than {min} items") });
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, item, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::Object(map) => {
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
                if map.len() as u64 > max {
                    return fail(Kind::Other, format!("has more than {max} keys"));
                }
            }
            for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    return Err(Violation { field: child(path, name), kind: Kind::Required, problem: "is required".into() });
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, v) in map {
                if let Some(names) = schema.get("propertyNames") {
                    // A key out of its set is the object's problem: name the object and the key.
                    validate(names, &json!(k), path).map_err(|v| Violation {
                        field: path.to_owned(),
                        kind: v.kind,
                        problem: format!("has the key {k:?}, which {}", v.problem),
                    })?;
                }
                match props.and_then(|p| p.get(k)) {
                    Some(s) => validate(s, v, &child(path, k))?,
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            return Err(Violation { field: child(path, k), kind: Kind::Unknown, problem: "is not a known field".into() })
                        }
                        Some(extra @ Value::Object(_)) => validate(extra, v, &child(path, k))?,
                        _ => {}
                    },
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// An RFC 3339 full-date (`format: date`).
fn is_date(s: &str) -> bool {
    s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// An RFC 3339 date-time (`format: date-time`): `T` or `t` between date and time, `Z` or an
/// offset.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && matches!(b[10], b'T' | b't') && s.get(..10).is_some_and(is_date) && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// A pattern's meaning in words, for the messages of the patterns this module writes.
fn pattern_problem(pattern: &str) -> String {
    if pattern == MOBILE {
        "is not a mainland China mobile number (11 digits starting 13–19, optionally after +86)".into()
    } else if pattern == CURSOR {
        "is not a cursor (pass next_cursor from the previous page unchanged)".into()
    } else if pattern == DATE_RANGE || pattern == TIME_RANGE {
        "must be between 1900-01-01 and 2100-01-01".into()
    } else if pattern == NO_NUL {
        "must not contain NUL (U+0000) characters".into()
    } else if pattern == not_blank() {
        "must not be blank or contain NUL (U+0000) characters".into()
    } else if pattern == email() {
        "is not an email address".into()
    } else if pattern == mapping() {
        "must be SOURCE=FIELD, neither side blank".into()
    } else if pattern == "^[A-Z]{3}$" {
        "must be a 3-letter currency code in capitals, like CNY".into()
    } else {
        format!("does not match the pattern {pattern}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constraint_finds_its_target() {
        let (doc, problems) = build();
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]));
        assert_eq!(doc["paths"]["/api/v1/openapi.json"]["get"]["security"], json!([]));
        let mut ids = std::collections::HashSet::new();
        for ops in doc["paths"].as_object().into_iter().flat_map(|p| p.values()) {
            for op in ops.as_object().into_iter().flat_map(|o| o.values()) {
                assert!(ids.insert(op["operationId"].as_str().unwrap_or_default().to_owned()), "duplicate id {}", op["operationId"]);
            }
        }
    }

    #[test]
    fn every_pattern_compiles_in_rust_and_refuses_nul() {
        let (doc, _) = build();
        let mut patterns = Vec::new();
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(p)) = m.get("pattern") {
                        out.push(p.clone());
                    }
                    m.values().for_each(|x| walk(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        walk(&doc, &mut patterns);
        assert!(patterns.len() > 20);
        for p in patterns {
            let re = regex::Regex::new(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
            assert!(!re.is_match("a\u{0}b") || p == CURSOR, "{p} admits NUL");
        }
    }

    #[test]
    fn patterns_agree_with_the_store() {
        let mobile = regex::Regex::new(MOBILE).unwrap();
        for m in ["13800138000", "+8619912345678"] {
            assert!(mobile.is_match(m) && patron_store::values::parse_mobile(m).is_ok(), "{m}");
        }
        let email = regex::Regex::new(&email()).unwrap();
        for (e, ok) in [
            ("a@b.c", true),
            ("Li.Lei@Example.com", true),
            ("a@b", false),
            ("a b@c.d", false),
            ("@c.d", false),
            ("a@.c", false),
            ("a@c.", false),
            ("a@@c.d", false),
            ("a@c\u{3000}.d", false),
        ] {
            assert_eq!(email.is_match(e), ok, "{e}");
            assert_eq!(patron_store::values::parse_email(e).is_ok(), ok, "{e}");
        }
        let blank = regex::Regex::new(&not_blank()).unwrap();
        for (s, ok) in [(" a ", true), ("", false), (" \u{3000}\u{85}\t", false), ("\u{feff}", true)] {
            assert_eq!(blank.is_match(s), ok, "{s:?}");
            assert_eq!(!s.trim().is_empty(), ok, "{s:?}");
        }
    }

    #[test]
    fn webhook_patterns_agree_with_the_store() {
        let url = regex::Regex::new(&webhook_url_pattern()).unwrap();
        for u in [
            "https://hooks.example.com/x",
            "http://10.0.0.1:9000",
            "https://?",
            "https:///x",
            "https://",
            " https://a",
            "https://a b",
            "https://a\u{3000}",
            "https://a\u{85}",
            "https://a\u{9f}",
            "ftp://a",
            "HTTPS://a",
        ] {
            assert_eq!(url.is_match(u), patron_store::webhooks::check_url(u).is_ok(), "{u:?}");
        }
        let event = regex::Regex::new(WEBHOOK_EVENT).unwrap();
        for e in ["*", "ticket.*", "order.created", "a.b.c", "Ticket.x", "t.", ".t", "t", "t.**", &format!("{}.x", "a".repeat(41))] {
            assert_eq!(event.is_match(e), patron_store::webhooks::check_events(&[e.to_string()]).is_ok(), "{e:?}");
        }
    }

    #[test]
    fn integers_with_a_zero_fraction_are_integers() {
        for (t, n) in [
            ("151", Some(151)),
            ("151.0", Some(151)),
            ("-3.000", Some(-3)),
            ("1.51e2", Some(151)),
            ("1E3", Some(1000)),
            ("0.0", Some(0)),
            ("-0", Some(0)),
        ] {
            assert_eq!(parse_integer(t), n, "{t}");
        }
        for t in ["151.5", "1e-1", "abc", "", ".", "1e400", "9223372036854775808", "1.5e0", "--1", "1 "] {
            assert_eq!(parse_integer(t), None, "{t}");
        }
        assert_eq!(parse_integer("9223372036854775807.0"), Some(i64::MAX));
        assert_eq!(parse_integer("-9223372036854775808"), Some(i64::MIN));
    }
}
