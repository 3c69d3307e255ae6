//! Message templates per channel (e-mail: subject, text and HTML; SMS; WeChat; direct mail),
//! rendered with minijinja in strict mode — an unknown or missing variable is an error and the
//! message is not sent — and the personalisation lint that keeps "Dear customer" out.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::personal::{self, PersonalVariables, PERSONAL_VARIABLES, VARIABLES};
use super::{Channel, EngagementSettings, Purpose};
use crate::db::query;
use crate::users::Actor;
use crate::{audit, Result, Store, StoreError};

/// A stored template.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageTemplate {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The channel it is written for.
    pub channel: Channel,
    /// Marketing or transactional.
    pub purpose: Purpose,
    /// E-mail subject.
    pub subject: Option<String>,
    /// The text (the e-mail's plain part, the SMS, the WeChat message, the letter).
    pub body_text: String,
    /// The e-mail's HTML part.
    pub body_html: Option<String>,
    /// Who made it.
    pub created_by: String,
    /// When (UTC).
    pub created_at: DateTime<Utc>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TemplateRow {
    id: i64,
    name: String,
    channel: String,
    purpose: String,
    subject: Option<String>,
    body_text: String,
    body_html: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TemplateRow> for MessageTemplate {
    type Error = StoreError;
    fn try_from(r: TemplateRow) -> Result<Self> {
        Ok(MessageTemplate {
            id: r.id,
            name: r.name,
            channel: Channel::parse(&r.channel)?,
            purpose: Purpose::parse(&r.purpose)?,
            subject: r.subject,
            body_text: r.body_text,
            body_html: r.body_html,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A new template.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    /// Name (1–200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The channel.
    pub channel: Channel,
    /// Marketing (the default) or transactional.
    #[serde(default = "marketing")]
    pub purpose: Purpose,
    /// E-mail subject (required for e-mail, not allowed elsewhere).
    #[schema(max_length = 500)]
    pub subject: Option<String>,
    /// The text (1–20,000 characters).
    #[schema(min_length = 1, max_length = 20000)]
    pub body_text: String,
    /// The e-mail's HTML part (e-mail only).
    #[schema(max_length = 200000)]
    pub body_html: Option<String>,
}

fn marketing() -> Purpose {
    Purpose::Marketing
}

/// One finding of the lint.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LintIssue {
    /// `syntax`, `unknown_variable`, `generic_greeting`, `generic_fallback`, `not_personal`,
    /// `sms_length`, `no_unsubscribe`, `subject`, `html`.
    pub code: String,
    /// The part of the template (`subject`, `body_text`, `body_html`).
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

/// What the lint found: errors refuse the template, warnings do not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct LintReport {
    /// Reasons the template is refused.
    pub errors: Vec<LintIssue>,
    /// Things to look at.
    pub warnings: Vec<LintIssue>,
}

impl LintReport {
    fn error(&mut self, code: &str, field: &str, message: String) {
        self.errors.push(LintIssue { code: code.into(), field: field.into(), message });
    }
    fn warning(&mut self, code: &str, field: &str, message: String) {
        self.warnings.push(LintIssue { code: code.into(), field: field.into(), message });
    }
}

/// A created template and the lint's warnings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedTemplate {
    /// The template.
    pub template: MessageTemplate,
    /// Warnings (an SMS longer than one message, a marketing e-mail without an unsubscribe link).
    pub warnings: Vec<LintIssue>,
}

/// A message rendered for one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rendered {
    /// Subject (e-mail).
    pub subject: Option<String>,
    /// Text.
    pub text: String,
    /// HTML (e-mail).
    pub html: Option<String>,
}

/// Characters in one SMS: 160 in the GSM alphabet, 70 when any character is outside it (UCS-2).
pub fn sms_capacity(text: &str) -> usize {
    const GSM: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    if text.chars().all(|c| GSM.contains(c)) {
        160
    } else {
        70
    }
}

/// The minijinja environment of messages: strict (an undefined variable is an error), HTML
/// escaped in `*.html` parts only.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    // A template is written by a user and rendered by the sender for every customer (and by the
    // lint for a sample one): nested `range` loops would otherwise run for hours. A real
    // message takes a few hundred instructions; past the fuel the render fails with a message.
    env.set_fuel(Some(RENDER_FUEL));
    env
}

/// The instructions one render of a part may execute.
const RENDER_FUEL: u64 = 20_000;

/// The longest rendered part: a message is at most the 200,000 characters an HTML part may be.
const MAX_RENDERED: usize = 400_000;

/// Functions minijinja offers in every template (not variables).
const BUILTINS: &[&str] = &["range", "dict", "namespace", "debug"];

/// The parts of a template: (field, file name for escaping, source).
fn parts(t: &NewTemplate) -> Vec<(&'static str, &'static str, &str)> {
    let mut v = Vec::new();
    if let Some(s) = &t.subject {
        v.push(("subject", "subject.txt", s.as_str()));
    }
    v.push(("body_text", "body.txt", t.body_text.as_str()));
    if let Some(h) = &t.body_html {
        v.push(("body_html", "body.html", h.as_str()));
    }
    v
}

/// Lints a template: syntax, unknown variables, generic greetings (also as a `default(…)` or
/// `or` fallback), a marketing template that uses no personal variable (errors); an SMS longer
/// than one message and a marketing e-mail without `unsubscribe_url` (warnings).
pub fn lint(t: &NewTemplate, settings: &EngagementSettings) -> LintReport {
    let mut r = LintReport::default();
    let name_len = t.name.trim().chars().count();
    if name_len == 0 || name_len > 200 {
        r.error("name", "name", "give a name of 1 to 200 characters".into());
    }
    match (t.channel, &t.subject) {
        (Channel::Email, None) => r.error("subject", "subject", "an e-mail needs a subject".into()),
        (Channel::Email, Some(s)) if s.trim().is_empty() => r.error("subject", "subject", "an e-mail needs a subject".into()),
        (Channel::Email, _) => {}
        (_, Some(_)) => r.error("subject", "subject", "only e-mail has a subject".into()),
        (_, None) => {}
    }
    if t.channel != Channel::Email && t.body_html.is_some() {
        r.error("html", "body_html", "only e-mail has an HTML part".into());
    }
    if t.body_text.trim().is_empty() {
        r.error("empty", "body_text", "the text is empty".into());
    }
    let env = environment();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for (field, file, src) in parts(t) {
        match env.template_from_named_str(file, src) {
            Ok(tpl) => {
                for v in tpl.undeclared_variables(false) {
                    if !VARIABLES.contains(&v.as_str()) && !BUILTINS.contains(&v.as_str()) {
                        r.error("unknown_variable", field, format!("unknown variable {v:?} (the variables are {})", VARIABLES.join(", ")));
                    }
                    used.insert(v);
                }
            }
            Err(e) => r.error("syntax", field, format!("template error: {e}")),
        }
        let lower = src.to_lowercase();
        for g in &settings.generic_greetings {
            let gl = g.to_lowercase();
            if gl.is_empty() || !lower.contains(&gl) {
                continue;
            }
            if in_fallback(&lower, &gl) {
                r.error(
                    "generic_fallback",
                    field,
                    format!(
                        "the fallback {g:?} is a generic greeting: a customer without a name would get it; write {{% if name %}} … instead"
                    ),
                );
            } else {
                r.error("generic_greeting", field, format!("{g:?} is a generic greeting; greet the customer with {{{{ salutation }}}}"));
            }
        }
    }
    let parsed = !r.errors.iter().any(|e| e.code == "syntax");
    if parsed && t.purpose == Purpose::Marketing && !used.iter().any(|v| PERSONAL_VARIABLES.contains(&v.as_str())) {
        r.error(
            "not_personal",
            "body_text",
            format!("a marketing message must use at least one personal variable ({})", PERSONAL_VARIABLES.join(", ")),
        );
    }
    if r.errors.is_empty() {
        // Rendered for a sample customer (every variable set), with a short link as a link
        // would be: what fails here (a type error, a loop past the fuel) fails for everyone.
        match render_parts(t, &personal::sample("https://x.cn/u/0123456789")) {
            Ok(out) if t.channel == Channel::Sms => {
                let (n, cap) = (out.text.chars().count(), sms_capacity(&out.text));
                if n > cap {
                    r.warning("sms_length", "body_text", format!("about {n} characters: longer than one SMS ({cap}), sent as several"));
                }
            }
            Ok(_) => {}
            Err(e) => r.error("render", "body_text", format!("the template does not render for a sample customer: {e}")),
        }
        if t.channel == Channel::Email && t.purpose == Purpose::Marketing && !used.contains("unsubscribe_url") {
            r.warning(
                "no_unsubscribe",
                "body_text",
                "a marketing e-mail should show {{ unsubscribe_url }} (the List-Unsubscribe header is added either way)".into(),
            );
        }
    }
    r
}

/// Whether a greeting (lower-cased) stands as a fallback in the (lower-cased) source: the
/// argument of `default(…)` / `d(…)`, or after `or` in an expression.
fn in_fallback(lower: &str, greeting: &str) -> bool {
    let re = regex::Regex::new(r#"(?:\|\s*(?:default|d)\s*\(\s*|\bor\s+)(?:"([^"]*)"|'([^']*)')"#);
    let Ok(re) = re else { return false };
    let found = re.captures_iter(lower).any(|c| c.get(1).or_else(|| c.get(2)).is_some_and(|m| m.as_str().contains(greeting)));
    found
}

/// Renders the parts of a template for the variables (strict: an undefined variable fails).
pub fn render_parts(t: &NewTemplate, vars: &PersonalVariables) -> std::result::Result<Rendered, String> {
    let env = environment();
    // A variable the customer has no value for (no purchase, not a member, no manager) is left
    // undefined rather than null, so that strict rendering refuses the message instead of
    // writing "none" into it; `| default(…)` still gives a template its own fallback.
    let ctx = without_nulls(serde_json::to_value(vars).map_err(|e| e.to_string())?);
    let one = |file: &str, src: &str| -> std::result::Result<String, String> {
        let tpl = env.template_from_named_str(file, src).map_err(|e| e.to_string())?;
        // Written through a cap: one instruction (a filter) can make a long string, which the
        // fuel alone would let a loop write thousands of times.
        let mut out = Capped(Vec::new());
        match tpl.render_captured_to(&ctx, &mut out) {
            Ok(_) => String::from_utf8(out.0).map_err(|e| e.to_string()),
            Err(_) if out.0.len() >= MAX_RENDERED => Err(format!("{file}: the rendered text is longer than {MAX_RENDERED} bytes")),
            Err(e) => Err(e.to_string()),
        }
    };
    Ok(Rendered {
        subject: match &t.subject {
            Some(s) => Some(one("subject.txt", s)?.trim().to_owned()),
            None => None,
        },
        text: one("body.txt", &t.body_text)?,
        html: match &t.body_html {
            Some(h) => Some(one("body.html", h)?),
            None => None,
        },
    })
}

/// A buffer that refuses to grow past [`MAX_RENDERED`] bytes.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED {
            self.0.resize(MAX_RENDERED, 0);
            return Err(std::io::Error::other("the rendered text is too long"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `v` without its null members, at every depth.
fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            serde_json::Value::Object(m.into_iter().filter(|(_, x)| !x.is_null()).map(|(k, x)| (k, without_nulls(x))).collect())
        }
        other => other,
    }
}

impl MessageTemplate {
    /// The template as input (to lint or render it).
    pub fn as_new(&self) -> NewTemplate {
        NewTemplate {
            name: self.name.clone(),
            channel: self.channel,
            purpose: self.purpose,
            subject: self.subject.clone(),
            body_text: self.body_text.clone(),
            body_html: self.body_html.clone(),
        }
    }
    /// Which of the variables that cost a query a sender must read for it (all of them when a
    /// part does not parse: rendering will say why).
    pub(crate) fn wanted(&self) -> personal::Wanted {
        let env = environment();
        let t = self.as_new();
        let mut used: BTreeSet<String> = BTreeSet::new();
        for (_, file, src) in parts(&t) {
            match env.template_from_named_str(file, src) {
                Ok(tpl) => used.extend(tpl.undeclared_variables(false)),
                Err(_) => return personal::Wanted::ALL,
            }
        }
        personal::Wanted {
            last_purchase: used.contains("last_purchase"),
            favourite_category: used.contains("favourite_category"),
            points: used.contains("points"),
        }
    }

    /// Renders for one customer's variables.
    pub fn render(&self, vars: &PersonalVariables) -> std::result::Result<Rendered, String> {
        render_parts(&self.as_new(), vars)
    }
}

const TEMPLATE_SELECT: &str =
    "SELECT id, name, channel, purpose, subject, body_text, body_html, created_by, created_at, updated_at FROM message_templates";

impl Store {
    /// Lints a template with the stored settings' greeting list.
    pub async fn lint_template(&self, t: &NewTemplate) -> Result<LintReport> {
        Ok(lint(t, &self.engagement_settings().await?))
    }

    /// Creates a template that passes the lint; `Err(report)` inside `Ok` when it does not.
    pub async fn create_template(&self, actor: &Actor, t: NewTemplate) -> Result<std::result::Result<CreatedTemplate, LintReport>> {
        let report = self.lint_template(&t).await?;
        if !report.errors.is_empty() {
            return Ok(Err(report));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = tx
            .fetch_one(
                query(
                    "INSERT INTO message_templates (name, channel, purpose, subject, body_text, body_html, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
                )
                .bind(t.name.trim())
                .bind(t.channel.as_str())
                .bind(t.purpose.as_str())
                .bind(t.subject.clone())
                .bind(t.body_text.clone())
                .bind(t.body_html.clone())
                .bind(&actor.key)
                .bind(now),
            )
            .await?;
        audit::record(&mut tx, now, &actor.key, "create", "message_template", Some(id.to_string()), None).await?;
        tx.commit().await?;
        Ok(Ok(CreatedTemplate { template: self.template(id).await?, warnings: report.warnings }))
    }

    /// One template.
    pub async fn template(&self, id: i64) -> Result<MessageTemplate> {
        let row: Option<TemplateRow> = self.db.reader().fetch_optional(query(format!("{TEMPLATE_SELECT} WHERE id = $1")).bind(id)).await?;
        row.ok_or(StoreError::NotFound("template"))?.try_into()
    }

    /// Every template, newest first.
    pub async fn templates(&self) -> Result<Vec<MessageTemplate>> {
        let rows: Vec<TemplateRow> = self.db.reader().fetch_all(query(format!("{TEMPLATE_SELECT} ORDER BY id DESC"))).await?;
        rows.into_iter().map(MessageTemplate::try_from).collect()
    }

    /// A template rendered for one customer (the unsubscribe link shown as `unsubscribe_url`).
    /// A template that does not render for this customer (a missing last purchase …) is 422.
    pub async fn preview_template(&self, id: i64, customer_id: i64, unsubscribe_url: &str) -> Result<Rendered> {
        let t = self.template(id).await?;
        let mut tx = self.db.begin().await?;
        let vars = personal::read(&mut tx, customer_id, self.config.business_tz, unsubscribe_url).await?;
        tx.rollback().await?;
        t.render(&vars).map_err(|e| StoreError::invalid("template", format!("does not render for this customer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(channel: Channel, subject: Option<&str>, text: &str) -> NewTemplate {
        NewTemplate {
            name: "t".into(),
            channel,
            purpose: Purpose::Marketing,
            subject: subject.map(str::to_owned),
            body_text: text.into(),
            body_html: None,
        }
    }

    fn codes(r: &LintReport) -> Vec<&str> {
        r.errors.iter().map(|e| e.code.as_str()).collect()
    }

    #[test]
    fn a_runaway_template_is_refused_not_run() {
        // Found by the template fuzz target's seeds: 10^10 iterations, and a long string.
        // Without the fuel the first would run for hours: the test finishing is the proof.
        let s = EngagementSettings::default();
        for body in [
            "{{ salutation }}{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "{{ salutation }}{% for i in range(100000) %}{{ range(100000) | join(',') }}{% endfor %}",
        ] {
            for channel in [Channel::Sms, Channel::Wechat] {
                let r = lint(&t(channel, None, body), &s);
                assert_eq!(codes(&r), vec!["render"], "{r:?}");
                assert!(render_parts(&t(channel, None, body), &personal::sample("u")).is_err());
            }
        }
    }

    #[test]
    fn every_listed_greeting_is_refused() {
        let s = EngagementSettings::default();
        for g in &s.generic_greetings {
            let r = lint(&t(Channel::Sms, None, &format!("{g}，{{{{ salutation }}}}，本周热菜八折")), &s);
            assert_eq!(codes(&r), vec!["generic_greeting"], "{g}: {r:?}");
            // Case does not matter for Latin greetings.
            let r = lint(&t(Channel::Sms, None, &format!("{}, {{{{ name }}}}", g.to_uppercase())), &s);
            assert_eq!(codes(&r), vec!["generic_greeting"], "{g}: {r:?}");
            let r = lint(&t(Channel::Sms, None, &format!("{{{{ name | default(\"{g}\") }}}}，您好")), &s);
            assert_eq!(codes(&r), vec!["generic_fallback"], "{g}: {r:?}");
            let r = lint(&t(Channel::Sms, None, &format!("{{{{ salutation or '{g}' }}}}，您好")), &s);
            assert_eq!(codes(&r), vec!["generic_fallback"], "{g}: {r:?}");
        }
    }

    #[test]
    fn personal_strict_and_warned() {
        let s = EngagementSettings::default();
        let r = lint(&t(Channel::Sms, None, "本周热菜八折，欢迎光临"), &s);
        assert_eq!(codes(&r), vec!["not_personal"]);
        let mut tr = t(Channel::Sms, None, "您的订单已确认");
        tr.purpose = Purpose::Transactional;
        assert!(lint(&tr, &s).errors.is_empty());
        let r = lint(&t(Channel::Sms, None, "{{ salutation }}，{{ nickname }}"), &s);
        assert_eq!(codes(&r), vec!["unknown_variable"]);
        let r = lint(&t(Channel::Sms, None, "{{ salutation "), &s);
        assert_eq!(codes(&r), vec!["syntax"]);
        let r = lint(&t(Channel::Email, None, "{{ salutation }}"), &s);
        assert_eq!(codes(&r), vec!["subject"]);
        let long = format!("{{{{ salutation }}}}，{}", "本店新品上市欢迎品尝".repeat(8));
        let r = lint(&t(Channel::Sms, None, &long), &s);
        assert!(r.errors.is_empty());
        assert_eq!(r.warnings.iter().map(|w| w.code.as_str()).collect::<Vec<_>>(), vec!["sms_length"]);
        let r = lint(&t(Channel::Email, Some("{{ salutation }}，新品"), "{{ salutation }}，新品上市"), &s);
        assert_eq!(r.warnings.iter().map(|w| w.code.as_str()).collect::<Vec<_>>(), vec!["no_unsubscribe"]);
        let ok = t(Channel::Email, Some("{{ salutation }}，新品"), "{{ salutation }}，新品上市 {{ unsubscribe_url }}");
        assert_eq!(lint(&ok, &s), LintReport::default());
    }

    #[test]
    fn strict_rendering_fails_on_missing_data() {
        let mut vars = personal::sample("https://x/u");
        let tpl = t(Channel::Sms, None, "{{ salutation }}，您上次在{{ last_purchase.store }}点了{{ last_purchase.product }}");
        assert_eq!(render_parts(&tpl, &vars).unwrap().text, "王先生，您上次在静安店点了招牌红烧肉");
        vars.last_purchase = None;
        assert!(render_parts(&tpl, &vars).is_err());
        let html = NewTemplate { body_html: Some("<p>{{ name }}</p>".into()), ..t(Channel::Email, Some("s {{ name }}"), "x") };
        vars.name = "<b>王</b>".into();
        assert_eq!(render_parts(&html, &vars).unwrap().html.unwrap(), "<p>&lt;b&gt;王&lt;&#x2f;b&gt;</p>");
    }
}
