//! The dashboard's HTML, drawn on the server: no script, no external CSS, fonts or
//! images (works offline), a throughput chart as inline SVG. Every value that
//! comes from outside (workserver names, error reasons, URLs, ids) goes through
//! [`esc`].

use std::fmt::Write;

use testamur_common::wire::{DeadLetter, StatusResponse};

pub use testamur_common::html::escape as esc;

const STYLE: &str = r#"
:root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --mute: #6e7781; --line: #d0d7de; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; margin: 0; padding: 1.5rem 2rem; max-width: 78rem; }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; border-bottom: 1px solid var(--line); padding-bottom: .75rem; }
h1 { font-size: 1.4rem; margin: 0; } h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
.health { font-weight: 700; padding: .15rem .6rem; border-radius: 1rem; color: #fff; }
.health.ok { background: var(--ok); } .health.warn { background: var(--warn); } .health.bad { background: var(--bad); }
.mute { color: var(--mute); } .right { margin-left: auto; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(10rem, 1fr)); gap: .75rem; margin-top: 1rem; }
.card { border: 1px solid var(--line); border-radius: .5rem; padding: .6rem .8rem; }
.card b { display: block; font-size: 1.5rem; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num, th.num { text-align: right; }
.alive { color: var(--ok); font-weight: 600; } .dead { color: var(--bad); font-weight: 600; } .draining { color: var(--warn); font-weight: 600; }
.reason { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85em; word-break: break-word; }
svg text { fill: var(--mute); font-size: 11px; } svg .bar { fill: #2f81f7; }
form.inline { display: inline; } button { font: inherit; }
.login { max-width: 22rem; margin: 4rem auto; } .login input { width: 100%; font: inherit; padding: .4rem; margin: .4rem 0 .8rem; box-sizing: border-box; }
.error { color: var(--bad); }
"#;

fn head(title: &str, refresh: bool) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{}\
         <title>{}</title><style>{STYLE}</style></head>\n",
        if refresh {
            "<meta http-equiv=\"refresh\" content=\"5\">"
        } else {
            ""
        },
        esc(title)
    )
}

/// The login form (`error`: why the last attempt failed).
pub fn login_page(cc_name: &str, error: Option<&str>) -> String {
    let mut h = head(&format!("testamur · {cc_name} · sign in"), false);
    let _ = writeln!(
        h,
        "<body><main class=\"login\"><h1>testamur dashboard</h1>\
         <p class=\"mute\">Command center {}. Sign in with an operator API key (cc.conf, role \"operator\").</p>{}\
         <form method=\"post\" action=\"/dashboard/login\">\
         <label for=\"key\">Operator key</label>\
         <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button id=\"sign-in\" type=\"submit\">Sign in</button></form></main></body></html>",
        esc(cc_name),
        error
            .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e)))
            .unwrap_or_default()
    );
    h
}

/// How the cluster is doing, in one word and the reasons.
pub fn health(s: &StatusResponse) -> (&'static str, &'static str, Vec<String>) {
    let alive = s.workservers.iter().filter(|w| w.alive).count();
    let mut reasons = Vec::new();
    if alive == 0 {
        reasons.push("no live workserver".to_owned());
        return ("bad", "Down", reasons);
    }
    let dead = s.workservers.len() - alive;
    if dead > 0 {
        reasons.push(format!("{dead} workserver(s) not heard from"));
    }
    if s.dead_letters > 0 {
        reasons.push(format!("{} dead-letter callback(s)", s.dead_letters));
    }
    for w in &s.waiting_for_template {
        reasons.push(format!(
            "{} job(s) wait for template `{}` (version {}), which no live workserver has",
            w.jobs, w.template, w.version
        ));
    }
    if let Some(r) = &s.redis {
        if r.replicas_connected < r.replicas_wanted as u64 {
            reasons.push(format!(
                "durability = \"replica\" wants {} Redis replica(s), {} connected: submissions and results answer 503",
                r.replicas_wanted, r.replicas_connected
            ));
        }
    }
    if s.queue_depth > 0 && s.oldest_waiting_job_age_s > 60.0 {
        reasons.push(format!(
            "oldest waiting job {:.0} s old",
            s.oldest_waiting_job_age_s
        ));
    }
    if reasons.is_empty() {
        ("ok", "Healthy", reasons)
    } else {
        ("warn", "Degraded", reasons)
    }
}

/// Completions per minute over the last hour as an SVG bar chart.
fn chart(per_minute: &[u64]) -> String {
    let (w, h, left, bottom) = (720.0, 160.0, 40.0, 20.0);
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let n = per_minute.len().max(1) as f64;
    let bw = (w - left) / n;
    let mut svg = format!(
        "<svg id=\"throughput-chart\" viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" \
         aria-label=\"completions per minute over the last hour, at most {max}\">"
    );
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"12\">{max}/min</text><text x=\"0\" y=\"{}\">0</text>\
         <text x=\"{left}\" y=\"{}\">60 min ago</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">now</text>",
        h - bottom,
        h - 4.0,
        w,
        h - 4.0
    );
    for (i, v) in per_minute.iter().enumerate() {
        let bh = (*v as f64 / max as f64) * (h - bottom - 16.0);
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{v}</title></rect>",
            left + i as f64 * bw + 1.0,
            h - bottom - bh,
            (bw - 2.0).max(1.0),
            bh
        );
    }
    svg.push_str("</svg>");
    svg
}

/// " · Redis host:port, durability replica (1 of 1 replicas)" for the header.
fn redis_line(s: &StatusResponse) -> String {
    let Some(r) = &s.redis else {
        return String::new();
    };
    let at = r
        .primary
        .as_deref()
        .map(|p| format!(" {p}"))
        .unwrap_or_default();
    format!(
        " · Redis{at}, durability {} ({} replica(s) connected{})",
        r.durability,
        r.replicas_connected,
        match r.replicas_wanted {
            0 => String::new(),
            n => format!(", {n} wanted"),
        }
    )
}

/// The dashboard itself.
pub fn dashboard(s: &StatusResponse, dead: &[DeadLetter], now: &str) -> String {
    let (class, word, reasons) = health(s);
    let mut h = head(&format!("testamur · {} · {word}", s.cc_name), true);
    let _ = write!(
        h,
        "<body><header><h1>testamur</h1><span class=\"health {class}\" id=\"health\">{word}</span>\
         <span class=\"mute\">{}</span><span class=\"mute right\">command center <b>{}</b>{} · {}</span>\
         <form class=\"inline\" method=\"post\" action=\"/dashboard/logout\"><button type=\"submit\">Sign out</button></form></header>",
        esc(&reasons.join(" · ")),
        esc(&s.cc_name),
        esc(&redis_line(s)),
        esc(now)
    );
    let alive = s.workservers.iter().filter(|w| w.alive).count();
    let card = |id: &str, label: &str, value: String| {
        format!(
            "<div class=\"card\" id=\"{id}\"><b>{}</b>{}</div>",
            esc(&value),
            esc(label)
        )
    };
    h.push_str("<section class=\"cards\">");
    h.push_str(&card(
        "queue-depth",
        "waiting in queue",
        s.queue_depth.to_string(),
    ));
    h.push_str(&card("leased", "leased now", s.leased.to_string()));
    h.push_str(&card(
        "oldest-waiting",
        "oldest waiting",
        format!("{:.1} s", s.oldest_waiting_job_age_s),
    ));
    h.push_str(&card(
        "per-minute",
        "done in the last minute",
        s.throughput_last_minute.to_string(),
    ));
    h.push_str(&card(
        "per-hour",
        "done in the last hour",
        s.throughput_last_hour.to_string(),
    ));
    h.push_str(&card(
        "workservers-alive",
        "workservers alive",
        format!("{alive} / {}", s.workservers.len()),
    ));
    h.push_str(&card(
        "dead-letters",
        "dead-letter callbacks",
        s.dead_letters.to_string(),
    ));
    h.push_str(&card(
        "callbacks-pending",
        "callbacks pending",
        s.callbacks_pending.to_string(),
    ));
    h.push_str("</section>");

    h.push_str("<h2>Throughput: completions per minute, last hour</h2>");
    h.push_str(&chart(&s.throughput_per_minute));

    h.push_str(
        "<h2>Workservers</h2><table id=\"workservers\"><thead><tr><th>name</th><th>state</th>\
         <th class=\"num\">in flight</th><th class=\"num\">capacity</th><th class=\"num\">completed</th>\
         <th class=\"num\">failed</th><th>last heartbeat</th><th>version</th><th>id</th></tr></thead><tbody>",
    );
    if s.workservers.is_empty() {
        h.push_str("<tr><td colspan=\"9\" class=\"mute\">no workserver registered</td></tr>");
    }
    for w in &s.workservers {
        let (cls, state) = match (w.alive, w.draining, &w.name_conflict) {
            (_, _, Some(_)) => ("dead", "name conflict"),
            (true, true, _) => ("draining", "draining"),
            (true, false, _) => ("alive", "alive"),
            (false, _, _) => ("dead", "not heard from"),
        };
        let _ = write!(
            h,
            "<tr data-ws=\"{name}\"><td>{name}</td><td class=\"{cls}\">{state}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"mute\">{}</td></tr>",
            w.in_flight,
            w.capacity,
            w.completed,
            w.failed,
            esc(&w.last_heartbeat),
            esc(&w.version),
            esc(w.id.as_str()),
            name = esc(&w.name),
        );
    }
    h.push_str("</tbody></table>");

    h.push_str("<h2>Certificates by state</h2><table id=\"states\"><tbody>");
    for (state, n) in &s.certificates {
        let _ = write!(
            h,
            "<tr data-state=\"{st}\"><td>{st}</td><td class=\"num\">{n}</td></tr>",
            st = esc(state)
        );
    }
    h.push_str("</tbody></table>");

    h.push_str("<h2>Recent errors</h2><table id=\"errors\"><thead><tr><th>at</th><th>certificate</th><th>reason</th></tr></thead><tbody>");
    if s.recent_errors.is_empty() {
        h.push_str("<tr><td colspan=\"3\" class=\"mute\">none</td></tr>");
    }
    for e in s.recent_errors.iter().take(20) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"reason\">{}</td></tr>",
            esc(&e.at),
            esc(&e.cert_id),
            esc(&e.reason)
        );
    }
    h.push_str("</tbody></table>");

    let _ = write!(
        h,
        "<h2>Dead-letter callbacks ({})</h2><p class=\"mute\">Replay: <code>POST /v1/callbacks/replay</code> with an operator key.</p>\
         <table id=\"dead-letters\"><thead><tr><th>since</th><th>certificate</th><th>state</th><th>URL</th>\
         <th class=\"num\">attempts</th><th>last error</th></tr></thead><tbody>",
        s.dead_letters
    );
    if dead.is_empty() {
        h.push_str("<tr><td colspan=\"6\" class=\"mute\">none</td></tr>");
    }
    for d in dead {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"reason\">{}</td><td class=\"num\">{}</td><td class=\"reason\">{}</td></tr>",
            esc(&d.dead_at),
            esc(&d.cert_id),
            esc(&d.state),
            esc(&d.url),
            d.attempts,
            esc(&d.last_error)
        );
    }
    h.push_str("</tbody></table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    /// durability = "replica" with too few replicas connected: writes answer 503,
    /// and the dashboard says why.
    #[test]
    fn too_few_replicas_for_the_durability_is_degraded() {
        let status = |connected: u64| -> StatusResponse {
            serde_json::from_value(serde_json::json!({
                "cc_name": "cc-1", "queue_depth": 0, "leased": 0, "certificates": {},
                "throughput_last_minute": 0, "oldest_waiting_job_age_s": 0.0,
                "recent_errors": [], "dead_letters": 0,
                "workservers": [{"id": "0123456789abcdef0123456789abcdef", "name": "ws-1",
                    "version": "v", "capacity": 1, "last_heartbeat": "t", "alive": true,
                    "in_flight": 0, "completed": 0, "failed": 0, "draining": false}],
                "redis": {"durability": "replica", "replicas_wanted": 1,
                    "replicas_connected": connected, "primary": "10.0.0.2:6379"}
            }))
            .unwrap()
        };
        let (_, word, reasons) = health(&status(0));
        assert_eq!(word, "Degraded");
        assert!(
            reasons[0].contains("wants 1 Redis replica(s), 0 connected"),
            "{reasons:?}"
        );
        assert_eq!(health(&status(1)).1, "Healthy");
        let page = dashboard(&status(1), &[], "now");
        assert!(
            page.contains(
                "Redis 10.0.0.2:6379, durability replica (1 replica(s) connected, 1 wanted)"
            ),
            "{page}"
        );
    }
}
