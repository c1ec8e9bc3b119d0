//! Workserver registration: cc_pass checks, token revocation on re-registration.

use serde_json::{json, Value};

use crate::helpers::cluster;

#[tokio::test(flavor = "multi_thread")]
async fn registration_checks_cc_pass_and_revokes_old_tokens() {
    let c = cluster(|s| s.workservers = 0).await;
    let api = c.operator().unwrap();
    let http = api.http();
    let register = |pass: String| {
        http.post(api.url("/v1/workservers/register"))
            .json(&json!({"name": "ws-x", "cc_pass": pass, "capacity": 2, "version": "test"}))
            .send()
    };

    // Right cc_pass: 201 with a token.
    let r = register(c.info.cc_pass.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    let token1 = first["token"].as_str().unwrap().to_owned();
    let ws1 = first["ws_id"].as_str().unwrap().to_owned();
    assert!(token1.len() >= 32);
    assert!(first["lease_ttl_s"].as_u64().unwrap() > 0);

    // Wrong cc_pass: 401 in the API's error shape.
    let r = register("not-the-pass-at-all".into()).await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cc_pass"));

    // The token works for a heartbeat...
    let hb = |ws: String, token: String| {
        http.post(api.url(&format!("/v1/workservers/{ws}/heartbeat")))
            .bearer_auth(token)
            .send()
    };
    let r = hb(ws1.clone(), token1.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["drain"], false);

    // ...until the same name registers again: then the old token is 401.
    let r = register(c.info.cc_pass.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["ws_id"], first["ws_id"]);
    let r = hb(ws1.clone(), token1.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = http
        .post(api.url("/v1/leases"))
        .bearer_auth(&token1)
        .json(&json!({"max_jobs": 1, "wait_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The new token works; another workserver's id is off limits.
    let token2 = second["token"].as_str().unwrap().to_owned();
    let ws2 = second["ws_id"].as_str().unwrap().to_owned();
    assert_eq!(hb(ws2.clone(), token2.clone()).await.unwrap().status(), 200);
    assert_eq!(hb(ws1, token2.clone()).await.unwrap().status(), 403);

    // Deregistration: 204, then the token is gone.
    let r = http
        .delete(api.url(&format!("/v1/workservers/{ws2}")))
        .bearer_auth(&token2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(hb(ws2, token2).await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_wrong_cc_pass_is_rate_limited() {
    let c = cluster(|s| s.workservers = 0).await;
    let api = c.operator().unwrap();
    let mut last = 0;
    for _ in 0..12 {
        let r = api
            .http()
            .post(api.url("/v1/workservers/register"))
            .json(&json!({"name": "ws-y", "cc_pass": "guess-guess-guess", "capacity": 1, "version": "t"}))
            .send()
            .await
            .unwrap();
        last = r.status().as_u16();
        if last == 429 {
            assert!(r.headers().get("retry-after").is_some());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            break;
        }
        assert_eq!(last, 401);
    }
    assert_eq!(
        last, 429,
        "ten wrong passwords from one address should be rate limited"
    );
}

/// A catalogue whose template version or course language would not fit the keys
/// and queues they name is refused with the field, and nothing is registered.
#[tokio::test(flavor = "multi_thread")]
async fn a_catalogue_with_a_bad_version_or_course_language_is_refused() {
    let c = cluster(|s| s.workservers = 0).await;
    let api = c.operator().unwrap();
    let catalog = |version: &str, lang: &str| {
        json!({
            "default": "t",
            "courses": [{"course": "course-v1:X+*", "template": "t", "lang": lang}],
            "templates": {"t": {"fields": {}, "version": version}},
            "coverage": {}
        })
    };
    let register = |templates: Value| {
        api.http()
            .post(api.url("/v1/workservers/register"))
            .json(
                &json!({"name": "ws-x", "cc_pass": c.info.cc_pass, "capacity": 2,
                "version": "test", "capabilities": {"templates": templates}}),
            )
            .send()
    };
    for (version, lang, says) in [
        ("1@2", "ja", "version"),
        (&"a".repeat(65) as &str, "ja", "version"),
        ("abc", " ja", "lang"),
        ("abc", "not a tag", "lang"),
    ] {
        let r = register(catalog(version, lang)).await.unwrap();
        assert_eq!(r.status(), 422, "{version} {lang}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["field"], "capabilities.templates");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    let workservers = c.redis.cli(&["SCARD", "tm:workservers"]).unwrap();
    assert_eq!(workservers.trim(), "0");
    let r = register(catalog("abc-1.2_x", "zh-Hant")).await.unwrap();
    assert_eq!(r.status(), 201);
}
