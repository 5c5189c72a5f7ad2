//! The HTML: plain server-rendered pages with inline CSS, no front-end build.

use session_core::CookieMeta;
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
.error{color:#c23b3b}.muted{color:#6b7385}
"#;

fn layout(title: &str, user: Option<&str>, body: &str) -> String {
    let who = match user {
        Some(u) => format!(
            r#"<span class="who">Signed in as <strong id="user">{}</strong></span>
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
                opt(c.expires.as_ref().map(session_core::time::to_iso)),
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
}
