//! Item 21: lms keys limited to courses (`course_prefixes` in cc.conf). Two LMSs,
//! OrgX's and OrgY's, share a cluster: each submits, reads, lists and batches only
//! its own courses, and the other's certificates look exactly like missing ones.

use testamur::api::ApiClient;
use testamur::cmd::demo::sample_request;
use testamur_common::wire::{BatchResult, SubmitRequest};

use crate::helpers::{cluster, TestCluster};

const ORGX_KEY: &str = "orgx-lms-key-0123456789abcdef";
const ORGY_KEY: &str = "orgy-lms-key-0123456789abcdef";
const ORGX_COURSE: &str = "course-v1:OrgX+CS101+2026";
const ORGY_COURSE: &str = "course-v1:OrgY+BIO1+2026";
/// Starts with OrgX's prefix text but is another organisation's.
const ORGXY_COURSE: &str = "course-v1:OrgXY+ART2+2026";

fn scoped_keys() -> String {
    format!(
        "[[api_keys]]\nname = \"orgx\"\nrole = \"lms\"\nkey = \"{ORGX_KEY}\"\n\
         course_prefixes = [\"course-v1:OrgX+\"]\n\n\
         [[api_keys]]\nname = \"orgy\"\nrole = \"lms\"\nkey = \"{ORGY_KEY}\"\n\
         course_prefixes = [\"course-v1:OrgY+\", \"course-v1:OrgXY+\"]\n"
    )
}

fn client(c: &TestCluster, key: &str) -> ApiClient {
    ApiClient::new(&c.info.cc_url, Some(&c.info.ca_cert), key).unwrap()
}

fn request(n: usize, course: &str) -> SubmitRequest {
    let mut r = sample_request(n);
    r.course_id = Some(course.into());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_limited_to_courses_see_and_change_only_their_own() {
    let c = cluster(|s| {
        s.workservers = 0;
        s.cc_extra = scoped_keys();
    })
    .await;
    let (x, y, all) = (client(&c, ORGX_KEY), client(&c, ORGY_KEY), c.lms().unwrap());

    // Submit: each key its own courses only.
    let x_id = x
        .submit(&request(1, ORGX_COURSE))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let y_id = y
        .submit(&request(2, ORGY_COURSE))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let xy_id = y
        .submit(&request(3, ORGXY_COURSE))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    for (key, course) in [(&x, ORGY_COURSE), (&x, ORGXY_COURSE), (&y, ORGX_COURSE)] {
        let f = key.submit(&request(4, course)).await.unwrap().unwrap_err();
        assert_eq!(
            (f.status, f.code.as_str(), f.field.as_deref()),
            (403, "course_out_of_scope", Some("course_id")),
            "{course}: {f:?}"
        );
    }
    // Not a regen or delete of the other's certificate either.
    let mut regen = request(2, ORGY_COURSE);
    regen.action = Some("delete".into());
    assert_eq!(
        x.submit(&regen).await.unwrap().unwrap_err().code,
        "course_out_of_scope"
    );

    // Read: the other's certificate answers exactly as a missing one.
    let missing = x
        .certificate("00000000000000000000000000000000")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(missing.status, 404);
    for (key, id) in [(&x, &y_id), (&x, &xy_id), (&y, &x_id)] {
        let f = key.certificate(id.as_str()).await.unwrap().unwrap_err();
        assert_eq!(
            (f.status, &f.code, &f.message, &f.field),
            (
                missing.status,
                &missing.code,
                &missing.message,
                &missing.field
            ),
            "{id}"
        );
    }
    assert_eq!(
        x.certificate(x_id.as_str()).await.unwrap().unwrap().cert_id,
        x_id
    );
    // The unscoped key sees everything.
    for id in [&x_id, &y_id, &xy_id] {
        all.certificate(id.as_str()).await.unwrap().unwrap();
    }

    // List: one course at a time; another's course is empty.
    let mine = x
        .list(Some(ORGX_COURSE), None, None, None)
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<_> = mine.items.iter().map(|i| i.cert_id.clone()).collect();
    assert_eq!(ids, vec![x_id.clone()]);
    for course in [ORGY_COURSE, ORGXY_COURSE] {
        let other = x
            .list(Some(course), None, None, None)
            .await
            .unwrap()
            .unwrap();
        assert!(
            other.items.is_empty() && other.next_cursor.is_none(),
            "{course}: {other:?}"
        );
    }
    let f = x.list(None, None, None, None).await.unwrap().unwrap_err();
    assert_eq!(
        (f.status, f.field.as_deref()),
        (422, Some("course_id")),
        "{f:?}"
    );
    assert!(f.message.contains("course-v1:OrgX+"), "{}", f.message);
    let f = x
        .list(None, Some("generating"), None, None)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(f.field.as_deref(), Some("course_id"));
    let everything = all.list(None, None, None, None).await.unwrap().unwrap();
    assert_eq!(everything.items.len(), 3);

    // Batch: out-of-scope items are rejected one by one, the rest queued.
    let batch = x
        .submit_batch(&[
            request(5, ORGX_COURSE),
            request(6, ORGY_COURSE),
            request(7, ORGX_COURSE),
        ])
        .await
        .unwrap()
        .unwrap();
    match &batch.results[..] {
        [BatchResult::Accepted(a), BatchResult::Rejected { status, error }, BatchResult::Accepted(b)] =>
        {
            assert_eq!(*status, 403);
            assert_eq!(error.code, "course_out_of_scope");
            assert_eq!(error.field.as_deref(), Some("course_id"));
            x.certificate(a.cert_id.as_str()).await.unwrap().unwrap();
            x.certificate(b.cert_id.as_str()).await.unwrap().unwrap();
        }
        other => panic!("{other:?}"),
    }
    let theirs = y
        .list(Some(ORGY_COURSE), None, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        theirs.items.len(),
        1,
        "the rejected item was not queued: {theirs:?}"
    );

    // Dead letters and replay stay operator-only, scoped or not.
    assert_eq!(x.dead_letters().await.unwrap().unwrap_err().status, 403);
    assert_eq!(x.replay(None).await.unwrap().unwrap_err().status, 403);
}
