//! The HTML: plain server-rendered pages with inline CSS, no front-end build.

use sessionkit_core::time::Timestamp;
use sessionkit_core::CookieMeta;
use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:.8rem 1.5rem;display:flex;gap:1.5rem;align-items:center}
header a{color:#cfd8ff;text-decoration:none}header a:hover{color:#fff}header .who{margin-left:auto;opacity:.85}
main{max-width:46rem;margin:2rem auto;padding:0 1rem}
.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:1.5rem;margin-bottom:1.2rem}
h1{margin-top:0;font-size:1.5rem}.big{font-size:2.6rem;font-weight:700;color:#3451d1}
input[type=text]{padding:.5rem .7rem;border:1px solid #c9cdd6;border-radius:6px;font-size:1rem}
button{background:#3451d1;color:#fff;border:0;border-radius:6px;padding:.5rem 1rem;font-size:1rem;cursor:pointer}
button.link{background:none;color:#cfd8ff;padding:0}button.danger{background:#c23b3b}
pre{background:#0f1320;color:#d6e2ff;padding:1rem;border-radius:8px;overflow:auto;font-size:.85rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #eceef2}
ul.cart{padding-left:0;list-style:none}ul.cart li{display:flex;justify-content:space-between;padding:.4rem 0;border-bottom:1px solid #eceef2}
.error{color:#c23b3b}.muted{color:#6b7385}.notice{color:#1f7a3a}
tr.current{background:#eef2ff}#sessions td{font-size:.9rem}td.ua{word-break:break-word}
"#;

fn layout(title: &str, user: Option<&str>, body: &str) -> String {
    let who = match user {
        Some(u) => format!(
            r#"<a href="/sessions" id="sessions-link">Your sessions</a><span class="who">Signed in as <strong id="user">{}</strong></span>
<form method="post" action="/logout"><button class="link" id="logout" type="submit">Log out</button></form>"#,
            esc(u)
        ),
        None => {
            r#"<span class="who"><a href="/login" id="login-link">Log in</a></span>"#.to_owned()
        }
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title} · session demo</title><style>{STYLE}</style></head><body>
<header><strong>session demo</strong><a href="/">Home</a><a href="/cart">Cart</a><a href="/session">Session</a>{who}</header>
<main>{body}</main></body></html>"#,
        title = esc(title)
    )
}

pub(crate) fn home(user: Option<&str>, views: u64, cart_items: usize) -> String {
    let greeting = match user {
        Some(u) => format!("<h1>Welcome back, {}!</h1>", esc(u)),
        None => "<h1>Welcome!</h1><p>You are not signed in. <a href=\"/login\">Log in</a> with any name.</p>".to_owned(),
    };
    layout(
        "Home",
        user,
        &format!(
            r#"<div class="card">{greeting}
<p>Visits in this session</p><div class="big" id="views">{views}</div>
<p class="muted">Reload the page: the counter lives in the server-side session.</p></div>
<div class="card"><p>Cart: <strong id="cart-count">{cart_items}</strong> item(s). <a href="/cart">Open the cart</a></p></div>"#
        ),
    )
}

pub(crate) fn login(user: Option<&str>, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    layout(
        "Log in",
        user,
        &format!(
            r#"<div class="card"><h1>Log in</h1>{error}
<form method="post" action="/login">
<p><label>User name<br><input type="text" name="username" id="username" required maxlength="64" autofocus></label></p>
<p><label><input type="checkbox" name="remember" id="remember" value="1"> Remember me for 30 days</label></p>
<p><button type="submit" id="login-submit">Log in</button></p></form>
<p class="muted">Any name works. Logging in gives the session a new id.</p></div>"#
        ),
    )
}

pub(crate) fn cart(user: Option<&str>, items: &[String]) -> String {
    let mut list = String::new();
    for item in items {
        let _ = write!(
            list,
            r#"<li><span class="item">{i}</span><form method="post" action="/cart/remove"><input type="hidden" name="item" value="{i}"><button class="danger" type="submit">Remove</button></form></li>"#,
            i = esc(item)
        );
    }
    if items.is_empty() {
        list.push_str(r#"<li class="muted" id="empty">The cart is empty.</li>"#);
    }
    layout(
        "Cart",
        user,
        &format!(
            r#"<div class="card"><h1>Cart</h1><ul class="cart" id="cart">{list}</ul>
<form method="post" action="/cart/add"><input type="text" name="item" id="item" placeholder="Something nice" maxlength="100" required>
<button type="submit" id="add">Add</button></form></div>"#
        ),
    )
}

pub(crate) fn inspect(
    user: Option<&str>,
    id: Option<&str>,
    data: &serde_json::Value,
    cookie: Option<&CookieMeta>,
) -> String {
    let json = serde_json::to_string_pretty(data).unwrap_or_default();
    let id = id
        .map(|i| format!("{}…", esc(&i.chars().take(8).collect::<String>())))
        .unwrap_or_else(|| "none (nothing stored yet)".into());
    let mut rows = String::new();
    if let Some(c) = cookie {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "—".into());
        let fields = [
            (
                "expires",
                opt(c.expires.as_ref().map(sessionkit_core::time::to_iso)),
            ),
            (
                "originalMaxAge (ms)",
                opt(c.original_max_age.map(|m| m.to_string())),
            ),
            ("httpOnly", opt(c.http_only.map(|v| v.to_string()))),
            ("secure", opt(c.secure.map(|v| v.to_string()))),
            ("sameSite", opt(c.same_site.map(|v| v.as_str().to_owned()))),
            ("path", opt(c.path.clone())),
            ("domain", opt(c.domain.clone())),
        ];
        for (k, v) in fields {
            let _ = write!(rows, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
        }
    }
    layout(
        "Session",
        user,
        &format!(
            r#"<div class="card"><h1>This session</h1><p>Id (first 8 characters): <code id="sid">{id}</code></p>
<h3>Data</h3><pre id="data">{json}</pre><h3>Cookie</h3><table id="cookie">{rows}</table></div>"#,
            json = esc(&json)
        ),
    )
}

/// A short page saying why a request was refused.
pub(crate) fn message(user: Option<&str>, title: &str, text: &str) -> String {
    layout(
        title,
        user,
        &format!(
            r#"<div class="card"><h1>{}</h1><p class="error" id="message">{}</p>
<p><a href="/sessions">Your sessions</a> · <a href="/">Home</a></p></div>"#,
            esc(title),
            esc(text)
        ),
    )
}

/// One row of "Your active sessions".
#[derive(Debug)]
pub(crate) struct SessionRow {
    /// What the revoke form posts (not the id).
    pub(crate) reference: String,
    /// The session of this request.
    pub(crate) current: bool,
    pub(crate) created: Option<Timestamp>,
    pub(crate) last_seen: Option<Timestamp>,
    pub(crate) expires: Option<Timestamp>,
    pub(crate) user_agent: Option<String>,
    pub(crate) ip: Option<String>,
}

/// What "Your active sessions" shows.
#[derive(Debug)]
pub(crate) enum SessionsView {
    /// The store keeps no per-user index.
    Unsupported,
    /// The user's live sessions and what the last action did.
    List {
        rows: Vec<SessionRow>,
        notice: Option<String>,
    },
}

/// An instant as `2026-11-27 09:12:03 UTC` in a `<time>` element.
fn when(t: Option<&Timestamp>) -> String {
    match t {
        Some(t) => {
            let iso = sessionkit_core::time::to_iso(t);
            let shown = format!("{} UTC", t.format("%Y-%m-%d %H:%M:%S"));
            format!(r#"<time datetime="{}">{}</time>"#, esc(&iso), esc(&shown))
        }
        None => r#"<span class="muted">unknown</span>"#.to_owned(),
    }
}

pub(crate) fn sessions(user: Option<&str>, view: &SessionsView) -> String {
    let body = match view {
        SessionsView::Unsupported => r#"<div class="card"><h1>Your active sessions</h1>
<p id="unsupported">This session store keeps no per-user session index, so your other sessions cannot be listed or revoked here.
The SQL stores keep it when their URL says <code>principal_index=true</code> (e.g. <code>SESSION_STORE_URL=sqlite://sessions.db?principal_index=true</code>, the demo's default).</p></div>"#
            .to_owned(),
        SessionsView::List { rows, notice } => {
            let notice = notice
                .as_deref()
                .map(|n| format!(r#"<p class="notice" id="notice">{}</p>"#, esc(n)))
                .unwrap_or_default();
            let mut table = String::new();
            for r in rows {
                let ua = r
                    .user_agent
                    .as_deref()
                    .map(esc)
                    .unwrap_or_else(|| r#"<span class="muted">unknown</span>"#.into());
                let ip = r
                    .ip
                    .as_deref()
                    .map(esc)
                    .unwrap_or_else(|| r#"<span class="muted">unknown</span>"#.into());
                let action = if r.current {
                    r#"<strong id="this-session">This session</strong>"#.to_owned()
                } else {
                    format!(
                        r#"<form method="post" action="/sessions/revoke"><input type="hidden" name="session" value="{}"><button class="danger revoke" type="submit">Revoke</button></form>"#,
                        esc(&r.reference)
                    )
                };
                let _ = write!(
                    table,
                    r#"<tr class="{class}" data-session="{reference}"><td class="ua">{ua}</td><td class="ip">{ip}</td><td>{created}</td><td>{seen}</td><td>{expires}</td><td>{action}</td></tr>"#,
                    class = if r.current { "session current" } else { "session" },
                    reference = esc(&r.reference),
                    created = when(r.created.as_ref()),
                    seen = when(r.last_seen.as_ref()),
                    expires = match &r.expires {
                        Some(t) => when(Some(t)),
                        None => "when the browser closes".to_owned(),
                    },
                );
            }
            if rows.is_empty() {
                table.push_str(r#"<tr><td colspan="6" class="muted" id="none">No session is listed yet (this one is, from its next request).</td></tr>"#);
            }
            let others = rows.iter().filter(|r| !r.current).count();
            let everywhere = if others > 0 {
                r#"<form method="post" action="/sessions/revoke-others"><p><button class="danger" id="revoke-others" type="submit">Log out everywhere else</button></p></form>"#
            } else {
                r#"<p class="muted" id="alone">You are signed in nowhere else.</p>"#
            };
            format!(
                r#"<div class="card"><h1>Your active sessions</h1>{notice}
<p class="muted">Every browser or device signed in under your name, from the session store. Revoking one signs it out at its next request.</p>
<table id="sessions"><tr><th>Browser</th><th>IP</th><th>Signed in</th><th>Last seen</th><th>Cookie expires</th><th></th></tr>{table}</table>
{everywhere}</div>"#
            )
        }
    };
    layout("Your sessions", user, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_escaped() {
        let page = cart(Some("<script>"), &["\"><img src=x>".to_owned()]);
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;script&gt;"));
    }

    #[test]
    fn session_rows_are_escaped_and_the_current_one_has_no_revoke_button() {
        let row = |current| SessionRow {
            reference: "ref".into(),
            current,
            created: None,
            last_seen: Some(sessionkit_core::time::from_millis(1_795_744_481_837)),
            expires: None,
            user_agent: Some("<script>alert(1)</script>".into()),
            ip: Some("\"><b>".into()),
        };
        let page = sessions(
            Some("u"),
            &SessionsView::List {
                rows: vec![row(true)],
                notice: None,
            },
        );
        assert!(!page.contains("<script>alert") && !page.contains("<b>"));
        assert!(page.contains("this-session") && !page.contains("class=\"danger revoke\""));
        assert!(page.contains("2026-11-27 01:54:41 UTC"));
        let page = sessions(
            Some("u"),
            &SessionsView::List {
                rows: vec![row(true), row(false)],
                notice: None,
            },
        );
        assert!(page.contains("class=\"danger revoke\"") && page.contains("revoke-others"));
    }
}
