//! Certificates that are right for every learner: a names corpus in many scripts
//! through both default templates, checked with poppler (`pdftotext` for the text,
//! `pdffonts` for embedded subsets, `pdftotext -bbox` for boxes), plus template
//! behaviour, determinism, verification pages and visual regression (`pdftoppm`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use testamur_common::ids::{CertId, CourseId, PublicUuid, Username};
use testamur_common::state::Action;
use testamur_common::wire::JobCertificate;
use testamur_ws::render::{RenderContext, Renderer};

use crate::helpers::{pdffonts, pdftotext};

pub(crate) const VERIFY_URL: &str =
    "https://certs.example.org/cert/25daeae4-5d47-4404-99cb-6c9a703aa14c/";

fn templates_dir() -> PathBuf {
    testamur::devcluster::default_templates()
}

/// The default templates, loaded once per test binary (fonts take a moment).
pub(crate) fn renderer() -> &'static Renderer {
    static R: OnceLock<Renderer> = OnceLock::new();
    R.get_or_init(|| {
        Renderer::load(&templates_dir()).expect(
            "the default templates load (fonts: run scripts/setup.sh for fonts-noto-core, fonts-noto-cjk)",
        )
    })
}

pub(crate) fn job(name: &str, course: &str, template: Option<&str>) -> JobCertificate {
    let course_id = CourseId::parse("course-v1:TestX+T1+2026").unwrap();
    let user = Username::parse("learner").unwrap();
    JobCertificate {
        cert_id: CertId::for_pair(&course_id, &user),
        course_id,
        username: user,
        name: Some(name.into()),
        course_name: Some(course.into()),
        org: Some("TestX University".into()),
        grade: None,
        designation: None,
        issued_date: "2026-11-23".into(),
        template: template.map(str::to_owned),
        lang: None,
        download_uuid: Some(PublicUuid::parse("9f1a0d42-ef42-4dab-ac9f-1b12c197066b").unwrap()),
        verify_uuid: Some(PublicUuid::parse("25daeae4-5d47-4404-99cb-6c9a703aa14c").unwrap()),
        previous: None,
        requested_at: None,
        status: None,
    }
}

/// Render `j` into `dir/file`; its path.
pub(crate) fn render_to(dir: &Path, file: &str, j: &JobCertificate) -> PathBuf {
    let out = renderer()
        .render(
            j,
            &RenderContext {
                verify_url: VERIFY_URL,
                signature: None,
            },
        )
        .unwrap_or_else(|e| panic!("render {:?}: {e}", j.name));
    let p = dir.join(file);
    std::fs::write(&p, &out.pdf).unwrap();
    p
}

/// Whitespace collapsed, and without the direction marks pdftotext puts around
/// right-to-left text (U+202A..U+202E).
fn squash(s: &str) -> String {
    s.replace(|c: char| ('\u{202A}'..='\u{202E}').contains(&c), "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// How pdftotext gives a name back.
#[derive(Clone, Copy)]
enum Extract {
    /// Exactly as typed.
    AsTyped,
    /// Every word: for mixed-direction names poppler's simplified bidi (it
    /// reverses each right-to-left stretch of a line, spaces included) moves a
    /// space or the Latin part; their visual order is checked with boxes instead
    /// (`right_to_left_names_are_in_visual_order`).
    Words,
}

const LONG_NAME: &str =
    "Maximiliana Alexandra Bartholomea Fitzgerald-Worthington von Hohenzollern-Sigmaringen III";
const LONG_COURSE: &str = "Advanced Topics in Distributed Systems: Consensus, Replication, Fault Tolerance and Verification of Concurrent Software";

fn corpus() -> Vec<(&'static str, &'static str, Extract)> {
    vec![
        (
            "accented Latin",
            "José Ñúñez-Çelik Ångström",
            Extract::AsTyped,
        ),
        ("Vietnamese", "Nguyễn Thị Minh Khai", Extract::AsTyped),
        (
            "Cyrillic",
            "Анастасия Владимировна Кузнецова",
            Extract::AsTyped,
        ),
        ("Greek", "Αλέξανδρος Παπαδόπουλος", Extract::AsTyped),
        ("Arabic", "محمد عبد الله", Extract::AsTyped),
        ("Hebrew", "שרה לוי", Extract::AsTyped),
        ("mixed Arabic/Latin", "Dr. محمد Smith", Extract::Words),
        (
            "Hebrew/Latin with parentheses",
            "שרה לוי (Sarah)",
            Extract::Words,
        ),
        ("Chinese", "王小明", Extract::AsTyped),
        ("Japanese", "山田さくら", Extract::AsTyped),
        ("Korean", "김민준", Extract::AsTyped),
        ("Devanagari", "प्रिया शर्मा", Extract::AsTyped),
        ("Thai", "สมชาย ใจดี", Extract::AsTyped),
        ("90-character name", LONG_NAME, Extract::AsTyped),
        ("markup", "AT&T <Tester>", Extract::AsTyped),
    ]
}

/// Words with their boxes from `pdftotext -bbox`: (text, xmin, ymin, xmax, ymax).
fn bbox_words(pdf: &Path) -> Vec<(String, f32, f32, f32, f32)> {
    let out = Command::new("pdftotext")
        .args(["-bbox"])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed by scripts/setup.sh");
    let html = String::from_utf8_lossy(&out.stdout);
    let attr = |line: &str, k: &str| -> f32 {
        let i = line.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
        line[i..].split('"').next().unwrap().parse().unwrap()
    };
    html.lines()
        .filter(|l| l.trim_start().starts_with("<word "))
        .map(|l| {
            let text = l
                .split('>')
                .nth(1)
                .unwrap_or("")
                .split('<')
                .next()
                .unwrap_or("");
            (
                text.to_owned(),
                attr(l, "xMin"),
                attr(l, "yMin"),
                attr(l, "xMax"),
                attr(l, "yMax"),
            )
        })
        .collect()
}

/// No two words overlap, and words in a field's box stay inside it.
fn check_boxes(pdf: &Path, template: &str, label: &str) {
    let words = bbox_words(pdf);
    assert!(!words.is_empty(), "{label}: no words in {}", pdf.display());
    const EPS: f32 = 0.6;
    for (i, a) in words.iter().enumerate() {
        for b in &words[i + 1..] {
            let overlap_x = a.3.min(b.3) - a.1.max(b.1);
            let overlap_y = a.4.min(b.4) - a.2.max(b.2);
            assert!(
                overlap_x <= EPS || overlap_y <= EPS,
                "{label} ({template}): words overlap: {a:?} and {b:?}"
            );
        }
    }
    for (field, [x, y, w, h]) in renderer().field_boxes(template) {
        if !["name", "course_name"].contains(&field.as_str()) {
            continue;
        }
        let inside: Vec<_> = words
            .iter()
            .filter(|wd| {
                let cy = (wd.2 + wd.4) / 2.0;
                let cx = (wd.1 + wd.3) / 2.0;
                cy > y && cy < y + h && cx > x - 50.0 && cx < x + w + 50.0
            })
            .collect();
        assert!(
            !inside.is_empty(),
            "{label} ({template}): nothing in the {field} box"
        );
        for wd in inside {
            assert!(
                wd.1 >= x - EPS && wd.3 <= x + w + EPS && wd.2 >= y - EPS && wd.4 <= y + h + EPS,
                "{label} ({template}): {wd:?} leaves the {field} box {:?}",
                [x, y, x + w, y + h]
            );
        }
    }
}

#[test]
fn names_in_every_script_extract_embed_and_fit() {
    let dir = tempfile::tempdir().unwrap();
    for template in ["classic", "letter"] {
        for (i, (label, name, extract)) in corpus().into_iter().enumerate() {
            let course = if label == "90-character name" {
                LONG_COURSE
            } else {
                "Introduction to Typography"
            };
            let pdf = render_to(
                dir.path(),
                &format!("{template}-{i}.pdf"),
                &job(name, course, Some(template)),
            );
            let text = squash(&pdftotext(&pdf));
            match extract {
                Extract::AsTyped => assert!(
                    text.contains(&squash(name)),
                    "{label} ({template}): pdftotext does not give back {name:?}:\n{text}"
                ),
                Extract::Words => {
                    for w in name.split_whitespace() {
                        assert!(
                            text.contains(w),
                            "{label} ({template}): {w:?} missing:\n{text}"
                        );
                    }
                }
            }
            assert!(
                text.contains(&squash(course)),
                "{label} ({template}): course title missing:\n{text}"
            );
            let fonts = pdffonts(&pdf);
            assert!(!fonts.is_empty(), "{label}: no fonts");
            for (font, emb, sub, uni) in fonts {
                assert_eq!(
                    (emb.as_str(), sub.as_str(), uni.as_str()),
                    ("yes", "yes", "yes"),
                    "{label} ({template}): {font}"
                );
            }
            check_boxes(&pdf, template, label);
        }
    }
}

#[test]
fn right_to_left_names_are_in_visual_order() {
    let dir = tempfile::tempdir().unwrap();
    // "שרה לוי (Sarah)" is a right-to-left paragraph: read from the right, the
    // Hebrew comes first, so "(Sarah)" is drawn at the left.
    let pdf = render_to(
        dir.path(),
        "he.pdf",
        &job("שרה לוי (Sarah)", "Course", Some("classic")),
    );
    let words = bbox_words(&pdf);
    let x_of = |needle: &str| {
        words
            .iter()
            .find(|w| w.0.contains(needle))
            .map(|w| w.1)
            .unwrap_or_else(|| panic!("{needle} not found in {words:?}"))
    };
    let sarah = x_of("Sarah");
    let hebrew: Vec<f32> = words
        .iter()
        .filter(|w| w.0.chars().any(|c| ('\u{5d0}'..='\u{5ea}').contains(&c)))
        .map(|w| w.1)
        .collect();
    assert_eq!(hebrew.len(), 2, "{words:?}");
    assert!(
        hebrew.iter().all(|&x| x > sarah),
        "Hebrew must be right of (Sarah): {words:?}"
    );
    // "Dr. محمد Smith" is left-to-right: Dr. | محمد | Smith.
    let pdf = render_to(
        dir.path(),
        "ar.pdf",
        &job("Dr. محمد Smith", "Course", Some("classic")),
    );
    let words = bbox_words(&pdf);
    let find =
        |pred: &dyn Fn(&str) -> bool| words.iter().find(|w| pred(&w.0)).map(|w| w.1).unwrap();
    let dr = find(&|t| t == "Dr.");
    let ar = find(&|t| t.chars().any(|c| ('\u{600}'..='\u{6ff}').contains(&c)));
    let smith = find(&|t| t == "Smith");
    assert!(dr < ar && ar < smith, "{words:?}");
}

#[test]
fn long_titles_shrink_and_wrap_without_overlap() {
    let dir = tempfile::tempdir().unwrap();
    for template in ["classic", "letter"] {
        let pdf = render_to(
            dir.path(),
            &format!("{template}.pdf"),
            &job(LONG_NAME, LONG_COURSE, Some(template)),
        );
        check_boxes(&pdf, template, "long");
        // The course title wrapped onto two lines.
        let words = bbox_words(&pdf);
        let (_, [x, y, w, h]) = renderer()
            .field_boxes(template)
            .into_iter()
            .find(|f| f.0 == "course_name")
            .unwrap();
        let mut tops: Vec<i32> = words
            .iter()
            .filter(|wd| {
                wd.1 >= x - 1.0 && wd.3 <= x + w + 1.0 && wd.2 >= y - 1.0 && wd.4 <= y + h + 1.0
            })
            .map(|wd| wd.2.round() as i32)
            .collect();
        tops.sort();
        tops.dedup();
        assert_eq!(
            tops.len(),
            2,
            "{template}: the course title should take two lines: {tops:?}"
        );
    }
}

#[test]
fn same_job_gives_identical_bytes() {
    let j = job("Zoë Ångström 王小明", "Course", None);
    let ctx = RenderContext {
        verify_url: VERIFY_URL,
        signature: None,
    };
    let a = renderer().render(&j, &ctx).unwrap().pdf;
    let b = renderer().render(&j, &ctx).unwrap().pdf;
    assert!(a == b, "two renders of one job differ");
    // A renderer with cold caches (layouts, font subsets, shaping plans) gives
    // the same bytes as one whose caches other jobs have filled.
    for name in ["Zoë", "Ångström", "王小明", "Zoë Ångström"] {
        renderer()
            .render(&job(name, "Course", Some("letter")), &ctx)
            .unwrap();
    }
    let cold = Renderer::load(&templates_dir()).unwrap();
    assert!(
        cold.render(&j, &ctx).unwrap().pdf == a,
        "a render from cold caches differs"
    );
    let c = renderer()
        .render(&job("Zoë Ångström 王小明x", "Course", None), &ctx)
        .unwrap()
        .pdf;
    assert!(a != c);
}

#[test]
fn pdf_sizes_without_artwork_stay_small() {
    let ctx = RenderContext {
        verify_url: VERIFY_URL,
        signature: None,
    };
    for name in ["Zoë Ångström", "王小明"] {
        let pdf = renderer()
            .render(
                &job(name, "软件系统性能工程 Software", Some("letter")),
                &ctx,
            )
            .unwrap()
            .pdf;
        assert!(
            pdf.len() <= 40 * 1024,
            "{name}: {} bytes (goal: 40 KB without background art)",
            pdf.len()
        );
    }
}

#[test]
fn undrawable_names_are_refused_with_the_characters() {
    let e = renderer()
        .render(
            &job("\u{12F90} Ankh", "Course", None),
            &RenderContext {
                verify_url: VERIFY_URL,
                signature: None,
            },
        )
        .err()
        .expect("no installed font has Cypro-Minoan");
    let msg = e.to_string();
    assert!(
        msg.contains("\u{12F90} (U+12F90, Cypro Minoan)") && msg.contains("name"),
        "{msg}"
    );
    assert!(msg.contains("no Debian font package is known"), "{msg}");
    // The catalogue the CC checks with agrees.
    let cat = renderer().catalog();
    let err = cat
        .check("classic", &[("name", "\u{12F90} Ankh")])
        .unwrap_err();
    assert_eq!(err.field, "name");
    assert!(err.message.contains("U+12F90"), "{}", err.message);
    for (_, name, _) in corpus() {
        for t in ["classic", "letter"] {
            cat.check(t, &[("name", name)])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

/// A templates folder with the defaults plus an index of our own.
pub(crate) fn custom_templates(
    index_extra: &str,
    patch: impl Fn(&str, String) -> String,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = templates_dir();
    std::fs::create_dir_all(dir.path().join("art")).unwrap();
    for e in std::fs::read_dir(src.join("art")).unwrap().flatten() {
        std::fs::copy(e.path(), dir.path().join("art").join(e.file_name())).unwrap();
    }
    for f in ["classic.toml", "letter.toml"] {
        let text = std::fs::read_to_string(src.join(f)).unwrap();
        std::fs::write(dir.path().join(f), patch(f, text)).unwrap();
    }
    let index = std::fs::read_to_string(src.join("index.toml")).unwrap();
    let index = index.replace("[courses]\n", &format!("[courses]\n{index_extra}\n"));
    std::fs::write(dir.path().join("index.toml"), index).unwrap();
    dir
}

fn page_size(pdf: &Path) -> String {
    let out = Command::new("pdfinfo")
        .arg(pdf)
        .output()
        .expect("pdfinfo (poppler-utils)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("Page size:"))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn template_precedence_request_then_course_then_default() {
    let t = custom_templates(
        "\"course-v1:LetterX+*\" = \"letter\"\n\"course-v1:LetterX+Special+2026\" = \"classic\"",
        |_, s| s,
    );
    let r = Renderer::load(t.path()).unwrap();
    let ctx = RenderContext {
        verify_url: VERIFY_URL,
        signature: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let size_for = |course: &str, template: Option<&str>| {
        let mut j = job("Ana", "Course", template);
        j.course_id = CourseId::parse(course).unwrap();
        let p = dir.path().join("x.pdf");
        std::fs::write(&p, r.render(&j, &ctx).unwrap().pdf).unwrap();
        page_size(&p)
    };
    let letter = "612 x 792";
    let a4_landscape = "841.89 x 595.28";
    assert!(
        size_for("course-v1:Other+1+1", None).contains(a4_landscape),
        "default"
    );
    assert!(
        size_for("course-v1:LetterX+C1+2026", None).contains(letter),
        "course prefix"
    );
    assert!(
        size_for("course-v1:LetterX+Special+2026", None).contains(a4_landscape),
        "exact beats prefix"
    );
    assert!(
        size_for("course-v1:LetterX+C1+2026", Some("classic")).contains(a4_landscape),
        "request wins"
    );
}

#[test]
fn bad_templates_name_file_and_key() {
    let t = custom_templates("", |f, s| {
        if f == "letter.toml" {
            s.replace("font = \"sans-bold\"", "font = \"nope\"")
        } else {
            s
        }
    });
    let e = Renderer::load(t.path()).err().unwrap().to_string();
    assert!(
        e.contains("letter.toml") && e.contains(".font") && e.contains("nope"),
        "{e}"
    );
    let t = custom_templates("\"x\" = \"missing\"", |_, s| s);
    let e = Renderer::load(t.path()).err().unwrap().to_string();
    assert!(e.contains("index.toml") && e.contains("missing"), "{e}");
    let t = custom_templates("", |f, s| {
        if f == "classic.toml" {
            s.replace("{org}", "{orgg}")
        } else {
            s
        }
    });
    let e = Renderer::load(t.path()).err().unwrap().to_string();
    assert!(e.contains("classic.toml") && e.contains("orgg"), "{e}");
}

fn pipeline(templates: &Path, storage: &Path) -> testamur_ws::job::Pipeline {
    let (secret, _, _) = testamur_ws::sign::generate_key("test").unwrap();
    let cert = testamur_ws::sign::parse_cert(secret.as_bytes()).unwrap();
    testamur_ws::job::Pipeline {
        renderer: Renderer::load(templates).unwrap(),
        key: testamur_ws::sign::SigningKey::from_cert(cert).unwrap(),
        storage: std::sync::Arc::new(
            testamur_ws::storage::DiskStorage::new(
                storage,
                &testamur_common::config::StorageConfig {
                    backend: testamur_common::config::StorageBackend::Dir {
                        dir: storage.to_owned(),
                    },
                    base_url: "https://certs.example.org/".into(),
                    keep_old_versions: false,
                    cache_max_age: std::time::Duration::from_secs(300),
                },
            )
            .unwrap(),
        ),
        workserver: "test".into(),
        verify_page_url: None,
        credentials: None,
        pdf_signer: None,
    }
}

/// [`pipeline`] with the default templates that also issues Open Badges
/// credentials (did:key, a fixed key) and signs the PDFs (a new development CA's
/// document-signing certificate, `testamur certs init`'s).
pub(crate) fn pipeline_with_credentials(storage: &Path) -> testamur_ws::job::Pipeline {
    let tls = tempfile::tempdir().unwrap();
    let files = testamur::tlsgen::generate(tls.path(), &["localhost".into()]).unwrap();
    let signer =
        testamur_ws::pdf_sign::PdfSigner::load(&testamur_common::config::PdfSignatureConfig {
            cert: files.pdf_cert,
            key: files.pdf_key,
        })
        .unwrap();
    testamur_ws::job::Pipeline {
        credentials: Some(testamur_ws::credential::Issuer::from_seed(
            &[42; 32],
            testamur_common::config::IssuerDid::Key,
        )),
        pdf_signer: Some(signer),
        ..pipeline(&templates_dir(), storage)
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn verification_pages_escape_and_verification_off_publishes_none() {
    let storage = tempfile::tempdir().unwrap();
    let p = pipeline(&templates_dir(), storage.path());
    let j = job(
        "AT&T <Tester>",
        "Course <b>bold</b> & more",
        Some("classic"),
    );
    let result = p.run(Action::Add, &j).unwrap();
    let files = files_under(storage.path());
    let page_rel = "cert/25daeae4-5d47-4404-99cb-6c9a703aa14c/index.html";
    assert!(files.iter().any(|f| f == page_rel), "{files:?}");
    let html = std::fs::read_to_string(storage.path().join(page_rel)).unwrap();
    assert!(
        html.contains("AT&amp;T &lt;Tester&gt;") && !html.contains("<Tester>"),
        "{html}"
    );
    assert!(
        html.contains("Course &lt;b&gt;bold&lt;/b&gt; &amp; more") && !html.contains("<b>bold")
    );
    assert!(html.contains(&p.key.fingerprint()), "fingerprint");
    assert!(
        html.contains("keys/signing-key.asc")
            && html.contains("Certificate.pdf.sig")
            && html.contains("gpg --verify")
    );
    assert!(html.contains(j.cert_id.as_str()) && html.contains("November 23rd, 2026"));
    assert_eq!(
        result.verify_url.as_deref(),
        Some("https://certs.example.org/cert/25daeae4-5d47-4404-99cb-6c9a703aa14c/")
    );
    // The PDF prints the verify URL.
    let pdf = storage
        .path()
        .join("downloads/9f1a0d42-ef42-4dab-ac9f-1b12c197066b/Certificate.pdf");
    let text = pdftotext(&pdf);
    assert!(squash(&text).contains("AT&T <Tester>"), "{text}");
    assert!(
        text.contains("cert/25daeae4-5d47-4404-99cb-6c9a703aa14c"),
        "{text}"
    );

    // Verification off: no cert/ files, no URL printed, signature beside the PDF.
    let t = custom_templates("", |_, s| {
        s.replace("verification = true", "verification = false")
    });
    let storage = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), storage.path());
    let result = p
        .run(Action::Add, &job("Ana", "Course", Some("classic")))
        .unwrap();
    let files = files_under(storage.path());
    assert!(files.iter().all(|f| !f.starts_with("cert/")), "{files:?}");
    assert!(
        files.iter().any(|f| f.ends_with("Certificate.pdf.sig")),
        "{files:?}"
    );
    assert!(result.verify_url.is_none());
    let pdf = storage
        .path()
        .join("downloads/9f1a0d42-ef42-4dab-ac9f-1b12c197066b/Certificate.pdf");
    assert!(
        !pdftotext(&pdf).contains("cert/"),
        "verify URL printed with verification off"
    );
}

/// Grayscale pixels of page 1 at 30 dpi.
fn raster(pdf: &Path, out_prefix: &Path) -> (u32, u32, Vec<u8>) {
    let st = Command::new("pdftoppm")
        .args(["-r", "30", "-gray", "-png", "-singlefile"])
        .arg(pdf)
        .arg(out_prefix)
        .status()
        .expect("pdftoppm (poppler-utils)");
    assert!(st.success());
    decode_gray(&out_prefix.with_extension("png"))
}

fn decode_gray(p: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::io::BufReader::new(std::fs::File::open(p).unwrap());
    let mut d = png::Decoder::new(file);
    d.set_transformations(png::Transformations::normalize_to_color8());
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let gray = buf[..(info.width * info.height) as usize * channels]
        .chunks(channels)
        .map(|c| c[0])
        .collect();
    (info.width, info.height, gray)
}

/// Key pages against the reference images in tests/reference (look at them when
/// they change; `UPDATE_REFERENCE=1` rewrites them).
#[test]
fn key_pages_match_reference_images() {
    let dir = tempfile::tempdir().unwrap();
    let refs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference");
    let cases = [
        (
            "classic-latin",
            job(
                "José Ñúñez-Çelik Ångström",
                "Introduction to Typography",
                Some("classic"),
            ),
        ),
        (
            "letter-arabic",
            job(
                "Dr. محمد Smith",
                "مقدمة في الطباعة Typography",
                Some("letter"),
            ),
        ),
        (
            "classic-cjk",
            job("山田さくら", "软件系统性能工程", Some("classic")),
        ),
    ];
    for (name, j) in cases {
        let pdf = render_to(dir.path(), &format!("{name}.pdf"), &j);
        let (w, h, px) = raster(&pdf, &dir.path().join(name));
        let reference = refs.join(format!("{name}.png"));
        if std::env::var_os("UPDATE_REFERENCE").is_some() {
            std::fs::create_dir_all(&refs).unwrap();
            std::fs::copy(dir.path().join(format!("{name}.png")), &reference).unwrap();
            continue;
        }
        let (rw, rh, rpx) = decode_gray(&reference);
        assert_eq!((w, h), (rw, rh), "{name}: page size changed");
        let diff: u64 = px
            .iter()
            .zip(&rpx)
            .map(|(a, b)| (*a as i32 - *b as i32).unsigned_abs() as u64)
            .sum();
        let mean = diff as f64 / px.len() as f64;
        let changed = px
            .iter()
            .zip(&rpx)
            .filter(|(a, b)| (**a as i32 - **b as i32).abs() > 64)
            .count();
        assert!(
            mean < 1.0 && (changed as f64) < px.len() as f64 * 0.005,
            "{name}: differs from {} (mean {mean:.2}, {changed} pixels); look at {} and rerun with UPDATE_REFERENCE=1 if the change is intended",
            reference.display(),
            dir.keep().join(format!("{name}.png")).display()
        );
    }
}

/// A fence that holds for its first `n` checks, then says the lease is lost.
struct LostAfter(std::sync::atomic::AtomicUsize);

impl testamur_ws::fence::LeaseCheck for LostAfter {
    fn still_held(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        let left = self.0.load(Ordering::SeqCst);
        if left == 0 {
            return Err("lease lost (test)".into());
        }
        self.0.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

/// Item 8: once a job's lease may be lost, it writes and removes nothing: a
/// late attempt neither overwrites the newer one's files nor brings a deleted
/// certificate back, nor removes the version a regen replaces.
#[test]
fn a_job_that_lost_its_lease_writes_and_removes_nothing() {
    let storage = tempfile::tempdir().unwrap();
    let p = pipeline(&templates_dir(), storage.path());
    let lost = |n| LostAfter(std::sync::atomic::AtomicUsize::new(n));
    let j = job("Ana Lovelace", "Course", Some("classic"));

    // Lost from the start: nothing at all.
    let e = p.run_fenced(Action::Add, &j, &lost(0)).unwrap_err();
    assert!(
        e.reason.contains("stopped before touching storage"),
        "{}",
        e.reason
    );
    assert!(files_under(storage.path()).is_empty());

    // Lost after the PDF: no signature, no page; and no clean-up either (the
    // newer attempt writes these same paths).
    let e = p.run_fenced(Action::Add, &j, &lost(1)).unwrap_err();
    assert!(e.retryable);
    let files = files_under(storage.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("Certificate.pdf"));

    // Published in full; then a regen and a delete that lost their leases
    // remove nothing of it.
    p.run(Action::Add, &j).unwrap();
    let published = files_under(storage.path());
    assert_eq!(published.len(), 3, "{published:?}");
    let mut regen = j.clone();
    regen.previous = Some(testamur_common::wire::PublishedVersion {
        download_uuid: j.download_uuid.clone().unwrap(),
        verify_uuid: j.verify_uuid.clone().unwrap(),
    });
    regen.download_uuid = Some(PublicUuid::parse("0b0e6d0c-5a8c-4d43-9d51-5b0f3f2f9a11").unwrap());
    regen.verify_uuid = Some(PublicUuid::parse("6c0d7e1a-2b3c-4d5e-8f90-a1b2c3d4e5f6").unwrap());
    // Holds for the three new files, lost before the old version's removal.
    assert!(p.run_fenced(Action::Regen, &regen, &lost(3)).is_err());
    let after = files_under(storage.path());
    for f in &published {
        assert!(
            after.contains(f),
            "{f} was removed by a job without its lease"
        );
    }
    let before_delete = files_under(storage.path());
    assert!(p.run_fenced(Action::Delete, &j, &lost(0)).is_err());
    assert_eq!(files_under(storage.path()).len(), before_delete.len());
}

/// Issue 13 item 7: a box that leaves the page is reported under the key that
/// puts it off the page, not always `x`.
#[test]
fn a_box_off_the_page_names_the_key_that_puts_it_there() {
    for (edit, key) in [
        ("x = 40\ny = 190\nwidth = 100\nheight = 30", "height"),
        ("x = 250\ny = 20\nwidth = 100\nheight = 10", "width"),
        ("x = -1\ny = 20\nwidth = 10\nheight = 10", "x"),
    ] {
        let classic = std::fs::read_to_string(templates_dir().join("classic.toml")).unwrap();
        let blocks = classic.matches("[[text]]").count();
        let t = custom_templates("", |f, text| {
            if f != "classic.toml" {
                return text;
            }
            format!("{text}\n[[text]]\ntext = \"{{name}}\"\n{edit}\nfont = \"sans-bold\"\nsize = [9, 14]\n")
        });
        let e = match Renderer::load(t.path()) {
            Ok(_) => panic!("{edit}: accepted"),
            Err(e) => e,
        };
        assert_eq!(e.key, format!("text[{blocks}].{key}"), "{edit}: {e}");
        assert!(e.file.ends_with("classic.toml"), "{e}");
    }
}

/// A 97-character name: wider than classic's name box at its smallest size, 16 pt.
const TWO_LINE_NAME: &str = "Pablo Diego José Francisco de Paula Juan Nepomuceno María de los \
                             Remedios Cipriano Ruiz y Picasso";

/// The words of `name` drawn in `template`'s name box: their (top, height), and
/// that they stay inside it.
fn name_lines(pdf: &Path, template: &str, name: &str) -> Vec<(i32, f32)> {
    let (_, [x, y, w, h]) = renderer()
        .field_boxes(template)
        .into_iter()
        .find(|f| f.0 == "name")
        .unwrap();
    let words: Vec<_> = bbox_words(pdf)
        .into_iter()
        .filter(|wd| name.split(' ').any(|n| n == wd.0))
        .filter(|wd| (wd.2 + wd.4) / 2.0 > y && (wd.2 + wd.4) / 2.0 < y + h)
        .collect();
    assert_eq!(
        words.len(),
        name.split(' ').count(),
        "{template}: every word of the name in its box: {words:?}"
    );
    for wd in &words {
        assert!(
            wd.1 >= x - 0.6 && wd.3 <= x + w + 0.6 && wd.2 >= y - 0.6 && wd.4 <= y + h + 0.6,
            "{template}: {wd:?} leaves the name box"
        );
    }
    let mut lines: Vec<(i32, f32)> = words
        .iter()
        .map(|wd| (wd.2.round() as i32, wd.4 - wd.2))
        .collect();
    lines.sort_by_key(|l| l.0);
    lines.dedup_by_key(|l| l.0);
    lines
}

/// Issue 13 item 6: a name too long for its one line at the smallest size gets a
/// second line in its box instead of being shrunk below that size (it was
/// printed at 13 pt); the renderer says so, naming the block.
#[test]
fn a_long_name_gets_a_second_line_before_going_under_the_smallest_size() {
    let dir = tempfile::tempdir().unwrap();
    let j = job(TWO_LINE_NAME, "Course", Some("classic"));
    let out = renderer()
        .render(
            &j,
            &RenderContext {
                verify_url: VERIFY_URL,
                signature: None,
            },
        )
        .unwrap();
    let pdf = dir.path().join("long.pdf");
    std::fs::write(&pdf, &out.pdf).unwrap();
    assert!(squash(&pdftotext(&pdf)).contains(TWO_LINE_NAME));
    let lines = name_lines(&pdf, "classic", TWO_LINE_NAME);
    assert_eq!(lines.len(), 2, "{lines:?}");
    // Word boxes are as high as Noto Serif Bold's ascent + descent (1.362 em).
    for (_, height) in &lines {
        assert!(height / 1.362 >= 16.0 - 0.05, "below 16 pt: {lines:?}");
    }
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    let note = &out.notes[0];
    assert_eq!(
        (
            note.block.as_str(),
            note.field.as_str(),
            note.lines,
            note.max_lines
        ),
        ("text[3]", "name", 2, 1)
    );
    assert!(note.size >= 16.0, "{note}");
    check_boxes(&pdf, "classic", "two-line name");
    // A name that fits on one line gets no note.
    let short = renderer()
        .render(
            &job("Zoë Ångström", "Course", Some("classic")),
            &RenderContext {
                verify_url: VERIFY_URL,
                signature: None,
            },
        )
        .unwrap();
    assert!(short.notes.is_empty(), "{:?}", short.notes);
}

/// `testamur preview` says what a CC would refuse (and prints nothing), and which
/// blocks took more lines than they ask.
#[test]
fn preview_refuses_what_the_cc_would_and_names_extra_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.pdf");
    let too_long = format!("{TWO_LINE_NAME} {TWO_LINE_NAME} {}", &LONG_NAME[..28]);
    assert_eq!(too_long.chars().count(), 224);
    let run = |name: &str| {
        Command::new(crate::helpers::BIN)
            .args(["preview", "--template", "classic", "--name", name, "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let r = run(&too_long);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && !out.exists(), "{r:?}");
    assert!(
        stderr.contains("refuses this certificate at submit (422, field `name`)")
            && stderr.contains("template `classic`")
            && stderr.contains("room for 114 characters")
            && stderr.contains("this one takes 224"),
        "{stderr}"
    );
    let r = run(TWO_LINE_NAME);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success() && out.exists(), "{r:?}");
    assert!(
        stdout.contains("note: template classic: text[3] (name) set on 2 line(s) at ")
            && stdout.contains("(max_lines = 1)")
            && stdout.contains("name 114"),
        "{stdout}"
    );
}

/// Through a cluster: the CC refuses a 224-character name at submit, naming the
/// field and the limit (it was published at 5.25 pt), and a 97-character one is
/// published on two lines at 16 pt or more.
#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_refuses_a_name_its_template_cannot_hold_and_prints_a_long_one() {
    use std::time::Duration;
    let c = crate::helpers::cluster(|s| s.workservers = 1).await;
    c.wait_workservers(1, Duration::from_secs(30))
        .await
        .unwrap();
    let lms = c.lms().unwrap();
    let mut r = testamur::cmd::demo::sample_request(1);
    r.template = Some("classic".into());
    r.name = Some(format!(
        "{TWO_LINE_NAME} {TWO_LINE_NAME} {}",
        &LONG_NAME[..28]
    ));
    let e = lms.submit(&r).await.unwrap().unwrap_err();
    assert_eq!((e.status, e.field.as_deref()), (422, Some("name")));
    assert!(
        e.message.contains("template `classic`")
            && e.message.contains("room for 114 characters")
            && e.message.contains("takes 224"),
        "{}",
        e.message
    );
    r.name = Some(TWO_LINE_NAME.into());
    let a = lms.submit(&r).await.unwrap().unwrap();
    let cert = lms
        .wait_final(a.cert_id.as_str(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        cert.state,
        testamur_common::state::CertState::Downloadable,
        "{:?}",
        cert.error_reason
    );
    let du = cert.download_uuid.as_ref().unwrap();
    let pdf = crate::helpers::public_file(&c, &format!("downloads/{du}/Certificate.pdf"));
    let lines = name_lines(&pdf, "classic", TWO_LINE_NAME);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().all(|(_, h)| h / 1.362 >= 16.0 - 0.05),
        "{lines:?}"
    );
}
