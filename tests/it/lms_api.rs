//! The LMS side of the API beyond single submits: Idempotency-Key, batches of
//! thousands with per-request errors, cursor pagination, and `submit --csv`.

use std::collections::HashSet;
use std::time::Instant;

use testamur_common::wire::{BatchResult, SubmitRequest};

use crate::helpers::{cluster, dump_logs, BIN};

fn request(course: usize, i: usize) -> SubmitRequest {
    SubmitRequest {
        action: Some("add".into()),
        username: Some(format!("u{i:05}")),
        course_id: Some(format!("course-v1:Batch+C{course}+2026")),
        name: Some(format!("Learner Nº{i} Zoë")),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_repeats_the_first_answer_and_queues_once() {
    let c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    let op = c.operator().unwrap();
    let send = |body: &'static str, key: &'static str| {
        let lms = lms.clone();
        async move {
            lms.http()
                .post(lms.url("/v1/certificates"))
                .bearer_auth(lms.key())
                .header("Idempotency-Key", key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send(
        r#"{"action":"add","username":"ada","course_id":"c1","name":"Ada Lovelace"}"#,
        "key-1",
    )
    .await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    // The same request (other key order and spacing) with the same key.
    let again = send(
        r#"{ "name": "Ada Lovelace", "course_id": "c1", "username": "ada", "action": "add" }"#,
        "key-1",
    )
    .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first, "the first answer, job id included");
    let st = op.status().await.unwrap().unwrap();
    assert_eq!(st.queue_depth, 1, "one job only");
    // The same key with another request: 422.
    let other = send(
        r#"{"action":"add","username":"ada","course_id":"c1","name":"Ada King"}"#,
        "key-1",
    )
    .await;
    assert_eq!(other.status(), 422);
    let e: serde_json::Value = other.json().await.unwrap();
    assert_eq!(e["error"]["code"], "idempotency_key_reused");
    // A new key for the same pair is a new request: the add is now illegal.
    let new_key = send(
        r#"{"action":"add","username":"ada","course_id":"c1","name":"Ada Lovelace"}"#,
        "key-2",
    )
    .await;
    assert_eq!(new_key.status(), 409);
    // That 409 is remembered too.
    let new_key_again = send(
        r#"{"action":"add","username":"ada","course_id":"c1","name":"Ada Lovelace"}"#,
        "key-2",
    )
    .await;
    assert_eq!(new_key_again.status(), 409);
    assert_eq!(new_key_again.headers()["idempotent-replayed"], "true");
    // A key that is not visible ASCII.
    let bad = send(
        r#"{"action":"add","username":"bob","course_id":"c1","name":"Bob"}"#,
        "",
    )
    .await;
    assert_eq!(bad.status(), 422);
    let st = op.status().await.unwrap().unwrap();
    assert_eq!(st.queue_depth, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_of_5000_with_10_bad_requests_and_pagination_visits_each_once() {
    let c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    let mut requests: Vec<serde_json::Value> = (0..5000)
        .map(|i| serde_json::to_value(request(i % 7, i)).unwrap())
        .collect();
    // (index, expected status, code, field)
    let bad: Vec<(usize, u16, &str, &str)> = vec![
        (0, 422, "invalid_value", "name"),
        (17, 422, "invalid_value", "action"),
        (512, 422, "invalid_value", "issued_date"),
        (999, 422, "invalid_value", "callback_url"),
        (1500, 422, "invalid_value", "username"),
        (2222, 400, "invalid_body", "nmae"),
        (3000, 422, "invalid_value", "name"),
        (3001, 400, "invalid_body", "name"),
        (4321, 422, "invalid_value", "course_id"),
        (4999, 409, "illegal_transition", ""),
    ];
    requests[0]["name"] = serde_json::Value::Null;
    requests[17]["action"] = "remove".into();
    requests[512]["issued_date"] = "2026-13-01".into();
    requests[999]["callback_url"] = "http://lms.example.org/cb".into();
    requests[1500]["username"] = "".into();
    requests[2222]["nmae"] = "typo".into();
    requests[3000]["name"] = "Bad\u{7}Bell".into();
    requests[3001]["name"] = 5.into();
    requests[4321].as_object_mut().unwrap().remove("course_id");
    // The same learner as request 4998: the add is already generating.
    requests[4999] = requests[4998].clone();
    let started = Instant::now();
    let resp: serde_json::Value = lms
        .http()
        .post(lms.url("/v1/certificates/batch"))
        .bearer_auth(lms.key())
        .json(&serde_json::json!({ "requests": requests }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    eprintln!("batch of 5000 accepted in {:?}", started.elapsed());
    let results: Vec<BatchResult> = serde_json::from_value(resp["results"].clone()).unwrap();
    assert_eq!(results.len(), 5000);
    let mut accepted = Vec::new();
    for (i, r) in results.iter().enumerate() {
        match (r, bad.iter().find(|b| b.0 == i)) {
            (BatchResult::Accepted(a), None) => {
                assert_eq!(a.state.as_str(), "generating");
                accepted.push(a.cert_id.to_string());
            }
            (BatchResult::Rejected { error, status }, Some((_, want, code, field))) => {
                assert_eq!(
                    (status, error.code.as_str()),
                    (want, *code),
                    "request {i}: {error:?}"
                );
                assert_eq!(error.field.as_deref().unwrap_or(""), *field, "request {i}");
                assert!(!error.message.is_empty());
            }
            (other, expected) => panic!("request {i}: {other:?}, expected {expected:?}"),
        }
    }
    assert_eq!(accepted.len(), 4990);
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!(st.queue_depth, 4990);
    assert_eq!(st.certificates["generating"], 4990);

    // Walk everything, 333 at a time, while more certificates arrive.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = lms
            .list(None, None, cursor.as_deref(), Some(333))
            .await
            .unwrap()
            .unwrap();
        assert!(page.items.len() <= 333);
        seen.extend(page.items.iter().map(|c| c.cert_id.to_string()));
        pages += 1;
        if pages == 3 {
            let late: Vec<SubmitRequest> = (0..50).map(|i| request(99, 10_000 + i)).collect();
            lms.submit_batch(&late).await.unwrap().unwrap();
        }
        match page.next_cursor {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a certificate was listed twice");
    for id in &accepted {
        assert!(unique.contains(id), "{id} was never listed");
    }
    // Filters: per course and state, and per state alone.
    let mut per_course = 0;
    for course in 0..7 {
        let cid = format!("course-v1:Batch+C{course}+2026");
        let mut cursor: Option<String> = None;
        loop {
            let page = lms
                .list(
                    Some(&cid),
                    Some("generating"),
                    cursor.as_deref(),
                    Some(1000),
                )
                .await
                .unwrap()
                .unwrap();
            for item in &page.items {
                assert_eq!(item.course_id.as_str(), cid);
            }
            per_course += page.items.len();
            match page.next_cursor {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    assert_eq!(per_course, 4990);
    let mut generating = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = lms
            .list(None, Some("generating"), cursor.as_deref(), Some(1000))
            .await
            .unwrap()
            .unwrap();
        generating += page.items.len();
        match page.next_cursor {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(generating, 5040);
    // `downloadable` has no index of its own (nearly every certificate ends there):
    // its walk filters every certificate, in pages that may be empty.
    let (mut downloadable, mut pages) = (0, 0);
    let mut cursor: Option<String> = None;
    loop {
        let page = lms
            .list(None, Some("downloadable"), cursor.as_deref(), None)
            .await
            .unwrap()
            .unwrap();
        downloadable += page.items.len();
        pages += 1;
        match page.next_cursor {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(downloadable, 0);
    assert!(pages <= 2, "{pages} pages for 5040 certificates");
    // Bad parameters name themselves.
    for (q, field) in [
        ("state=flying", "state"),
        ("cursor=zzz", "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
    ] {
        let r = lms
            .http()
            .get(lms.url(&format!("/v1/certificates?{q}")))
            .bearer_auth(lms.key())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{q}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["field"], field, "{q}");
    }
    // More than 10,000 requests: refused whole, nothing queued.
    let too_many: Vec<SubmitRequest> = (0..10_001).map(|i| request(50, i)).collect();
    let f = lms.submit_batch(&too_many).await.unwrap().unwrap_err();
    assert_eq!((f.status, f.field.as_deref()), (422, Some("requests")));
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!(st.queue_depth, 5040);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_csv_reports_rejects_and_waits_for_the_rest() {
    let c = cluster(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("learners.csv");
    // As a spreadsheet saves it: \r\n line ends.
    let mut text = String::from("username,course_id,name,issued_date\r\n");
    for i in 0..12 {
        text.push_str(&format!(
            "csv{i},course-v1:CSV+1+2026,\"Name, Nº{i}\",2026-11-0{}\r\n",
            1 + i % 9
        ));
    }
    // No name.
    text.push_str("bad1,course-v1:CSV+1+2026,,2026-11-01\r\n");
    // No such date, and a name that is a formula to a spreadsheet.
    text.push_str(
        "bad2,course-v1:CSV+1+2026,\"=HYPERLINK(\"\"https://evil.example/\"\",\"\"x\"\")\",2026-02-30\r\n",
    );
    text.push_str("bad3,course-v1:CSV+1+2026\r\n"); // too few cells
    std::fs::write(&csv, text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["submit", "--cluster"])
        .arg(c.dir().join("cluster.json"))
        .arg("--csv")
        .arg(&csv)
        .args(["--wait", "--batch-size", "5"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("accepted 12 of 15 rows, rejected 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("final states: downloadable 12"),
        "{stdout}\n{}",
        dump_logs(&c.dir().join("logs"))
    );
    // The lines of the file (the header is line 1), in the summary too.
    assert!(
        stdout.contains("line 14: name is required")
            && stdout.contains("line 16: the row has 2 cells"),
        "{stdout}"
    );
    let rejects = std::fs::read_to_string(dir.path().join("learners.csv.rejects.csv")).unwrap();
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(
        lines[0],
        "line,status,error_code,error_field,error_message,username,course_id,name,issued_date"
    );
    assert_eq!(lines.len(), 4, "{rejects}");
    assert!(
        lines[1].starts_with("14,422,invalid_value,name,"),
        "{rejects}"
    );
    assert!(
        lines[2].starts_with("15,422,invalid_value,issued_date,"),
        "{rejects}"
    );
    // Opened in a spreadsheet, the formula is text.
    assert!(
        lines[2].ends_with(",bad2,course-v1:CSV+1+2026,\"'=HYPERLINK(\"\"https://evil.example/\"\",\"\"x\"\")\",2026-02-30"),
        "{rejects}"
    );
    assert!(lines[3].starts_with("16,,unreadable_row,,"), "{rejects}");
    // An unknown column stops before anything is sent.
    std::fs::write(&csv, "username,course_id,nmae\nx,y,z\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["submit", "--cluster"])
        .arg(c.dir().join("cluster.json"))
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("unknown column `nmae`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_repeated_with_its_idempotency_key_is_answered_not_queued_again() {
    let c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    let op = c.operator().unwrap();
    let mut reqs: Vec<serde_json::Value> = (0..300)
        .map(|i| serde_json::to_value(request(1, i)).unwrap())
        .collect();
    reqs[7]["issued_date"] = "not a date".into();
    let send = |body: serde_json::Value, key: &'static str| {
        let lms = lms.clone();
        async move {
            lms.http()
                .post(lms.url("/v1/certificates/batch"))
                .bearer_auth(lms.key())
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send(serde_json::json!({ "requests": reqs }), "batch-1").await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(op.status().await.unwrap().unwrap().queue_depth, 299);
    // The LMS did not get the answer and sends the same batch again.
    let again = send(serde_json::json!({ "requests": reqs }), "batch-1").await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first, "the first answer, every job id included");
    assert_eq!(
        op.status().await.unwrap().unwrap().queue_depth,
        299,
        "nothing queued twice"
    );
    // The same key with another batch: 422, nothing queued.
    reqs.truncate(10);
    let other = send(serde_json::json!({ "requests": reqs }), "batch-1").await;
    assert_eq!(other.status(), 422);
    let e: serde_json::Value = other.json().await.unwrap();
    assert_eq!(e["error"]["code"], "idempotency_key_reused");
    // Without the key the repeat is a new request: the adds are 409 now.
    let plain = lms.submit_batch(&[request(1, 0)]).await.unwrap().unwrap();
    assert!(matches!(
        plain.results[0],
        BatchResult::Rejected { status: 409, .. }
    ));
    assert_eq!(op.status().await.unwrap().unwrap().queue_depth, 299);
}
