//! Message templates on arbitrary text: the lint answers with findings, never a panic, and a
//! template it passes renders (or fails with a message) for a full and an empty customer within
//! the render's fuel — a template is a user's program that the sender runs for every customer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patron_store::engagement::personal::{self, PersonalVariables};
use patron_store::engagement::templates::{lint, render_parts, NewTemplate};
use patron_store::engagement::{Channel, EngagementSettings, Purpose};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The first byte picks the channel and purpose; a NUL splits subject | text | html.
    let Some((&pick, rest)) = text.as_bytes().split_first() else { return };
    let Ok(rest) = std::str::from_utf8(rest) else { return };
    let mut parts = rest.splitn(3, '\0');
    let (a, b, c) = (parts.next().unwrap_or(""), parts.next(), parts.next());
    let channel = [Channel::Sms, Channel::Email, Channel::Wechat, Channel::Mail][usize::from(pick % 4)];
    let purpose = if pick & 4 == 0 { Purpose::Marketing } else { Purpose::Transactional };
    let t = match (channel, b) {
        (Channel::Email, Some(body)) => NewTemplate {
            name: "fuzz".into(),
            channel,
            purpose,
            subject: Some(a.to_owned()),
            body_text: body.to_owned(),
            body_html: c.map(str::to_owned),
        },
        _ => NewTemplate { name: "fuzz".into(), channel, purpose, subject: None, body_text: a.to_owned(), body_html: None },
    };
    let report = lint(&t, &EngagementSettings::default());
    let full = personal::sample("https://x.cn/u/0123456789");
    let empty = PersonalVariables {
        name: String::new(),
        salutation: String::new(),
        last_purchase: None,
        favourite_category: None,
        tier: None,
        manager_name: None,
        points: None,
        unsubscribe_url: "https://x.cn/u/0".into(),
    };
    let rendered = render_parts(&t, &full);
    if report.errors.is_empty() {
        // The lint rendered the same sample: it passed, so the sender renders it too.
        assert!(rendered.is_ok(), "the lint passed a template that does not render: {rendered:?}");
    }
    let _ = render_parts(&t, &empty);
});
