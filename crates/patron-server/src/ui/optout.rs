//! The links inside messages, reached without a login (rate-limited by the caller): `/t/{token}/{n}`
//! records a click and redirects to the n-th URL of that message (only URLs that were in it),
//! `/t/{token}/open.gif` records an e-mail open, and `/p/u/{token}` is the unsubscribe page
//! (a GET only shows it, as mail scanners fetch links; the POST — the page's button or the
//! mail client's RFC 8058 one-click — withdraws that channel's consent with source `unsubscribe`).
//! Nothing about the customer is shown.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use patron_store::engagement::Channel;
use patron_store::StoreError;

use crate::error::Path;
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/t/{token}/open.gif", get(open))
        .route("/t/{token}/{n}", get(click))
        .route("/p/u/{token}", get(unsubscribe_page).post(unsubscribe))
}

/// A 1×1 transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn page(status: StatusCode, zh: &str, en: &str, form: Option<&str>) -> Response {
    let button = form
        .map(|action| format!("<form method=\"post\" action=\"{action}\"><button type=\"submit\">退订 / Unsubscribe</button></form>"))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>退订 · Unsubscribe</title><style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;line-height:1.6}}\
         button{{font-size:1.1rem;padding:.8rem 1.2rem;width:100%;border-radius:.5rem;border:0;background:#b91c1c;color:#fff}}</style></head>\
         <body><p>{zh}</p><p lang=\"en\">{en}</p>{button}</body></html>"
    );
    (status, Html(body)).into_response()
}

fn channel_names(c: Channel) -> (&'static str, &'static str) {
    match c {
        Channel::Email => ("邮件", "e-mail"),
        Channel::Sms => ("短信", "SMS"),
        Channel::Wechat => ("微信消息", "WeChat messages"),
        Channel::Mail => ("纸质邮件", "letters"),
    }
}

fn unknown() -> Response {
    page(StatusCode::NOT_FOUND, "链接无效。", "This link is not valid.", None)
}

async fn unsubscribe_page(axum::extract::State(state): axum::extract::State<AppState>, Path(token): Path<String>) -> Response {
    match state.store.unsubscribe_channel(&token).await {
        Ok(c) => {
            let (zh, en) = channel_names(c);
            page(
                StatusCode::OK,
                &format!("不想再收到我们的{zh}？点击下方按钮即可退订。"),
                &format!("No more {en} from us? Press the button below."),
                Some(&format!("/p/u/{token}")),
            )
        }
        Err(StoreError::NotFound(_)) => unknown(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

async fn unsubscribe(axum::extract::State(state): axum::extract::State<AppState>, Path(token): Path<String>) -> Response {
    match state.store.unsubscribe(&token).await {
        Ok(c) => {
            let (zh, en) = channel_names(c);
            page(StatusCode::OK, &format!("已退订，您将不再收到我们的{zh}。"), &format!("Done: you will get no more {en} from us."), None)
        }
        Err(StoreError::NotFound(_)) => unknown(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

async fn click(axum::extract::State(state): axum::extract::State<AppState>, Path((token, n)): Path<(String, usize)>) -> Response {
    match state.store.track_click(&token, n).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(StoreError::NotFound(_)) => unknown(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

async fn open(axum::extract::State(state): axum::extract::State<AppState>, Path(token): Path<String>) -> Response {
    // The pixel is answered whatever the token (nothing to learn from it).
    if let Err(e) = state.store.track_open(&token).await {
        if !matches!(e, StoreError::NotFound(_)) {
            tracing::warn!(error = %e, "recording an open");
        }
    }
    ([(header::CONTENT_TYPE, "image/gif"), (header::CACHE_CONTROL, "no-store")], PIXEL).into_response()
}
