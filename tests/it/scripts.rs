//! Every script the installed fonts cover, in the right regional face (issue 13):
//! names in scripts no template lists are drawn from the font directories, the
//! CC's catalogue accepts exactly what a workserver draws, CJK names get the face
//! of their language, and a script with no installed font is refused with the
//! characters and the script named.

use std::path::Path;

use testamur_common::ids::CourseId;
use testamur_common::wire::JobCertificate;
use testamur_ws::render::{RenderContext, Renderer};

use crate::helpers::{pdffonts, pdftotext};
use crate::rendering::{render_to as render, renderer, VERIFY_URL};

/// One or more names per script: those of fonts-noto-core that no stack of the
/// shipped templates lists, and the ones they do.
pub const CORPUS: &[(&str, &str)] = &[
    ("Telugu", "శ్రీనివాస రావు"),
    ("Gujarati", "નરેન્દ્ર પટેલ"),
    ("Gurmukhi", "ਗੁਰਪ੍ਰੀਤ ਸਿੰਘ"),
    ("Kannada", "ಅನಿಲ್ ಕುಮಾರ್"),
    ("Malayalam", "മോഹൻലാൽ വിശ്വനാഥൻ"),
    ("Odia", "ସୁବ୍ରତ ମହାପାତ୍ର"),
    ("Khmer", "សុខ ចាន់ថា"),
    ("Myanmar", "အောင်ဆန်းစုကြည်"),
    ("Sinhala", "කුමාර සංගක්කාර"),
    ("Tibetan", "བསྟན་འཛིན་རྒྱ་མཚོ"),
    ("Cherokee", "ᏍᏏᏉᏯ ᎬᏂᎨᏒ"),
    ("Javanese", "ꦱꦸꦏꦂꦤꦺꦴ"),
    ("Yi", "ꆈꌠꁱꂷ"),
    ("Mongolian", "ᠲᠡᠮᠦᠵᠢᠨ"),
    ("Tamil", "முத்துலட்சுமி ரெட்டி"),
    ("Bengali", "রবীন্দ্রনাথ ঠাকুর"),
    ("Devanagari", "प्रिया शर्मा"),
    ("Thai", "สมชาย ใจดี"),
    ("Arabic", "محمد عبد الله"),
    ("Hebrew", "שרה לוי"),
    ("Greek", "Αλέξανδρος Παπαδόπουλος"),
    ("Cyrillic", "Анастасия Кузнецова"),
    ("Latin", "José Ñúñez-Çelik"),
];

/// A job of rendering.rs's learner, in `template`, with `lang`.
fn job(name: &str, template: &str, lang: Option<&str>) -> JobCertificate {
    JobCertificate {
        lang: lang.map(str::to_owned),
        ..crate::rendering::job(name, "Introduction to Typography", Some(template))
    }
}

fn pdftotext_raw(pdf: &Path) -> String {
    let out = std::process::Command::new("pdftotext")
        .args(["-raw".as_ref(), pdf.as_os_str(), "-".as_ref()])
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Without whitespace and the direction marks pdftotext adds.
fn bare(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !('\u{202A}'..='\u{202E}').contains(c))
        .collect()
}

#[test]
fn names_in_every_installed_script_are_accepted_drawn_and_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let cat = renderer().catalog();
    for template in ["classic", "letter"] {
        for (i, (script, name)) in CORPUS.iter().enumerate() {
            // What the CC checks at submit (the catalogue this workserver registers).
            cat.check(template, &[("name", name)])
                .unwrap_or_else(|e| panic!("{script} ({template}) refused: {}", e.message));
            let pdf = render(
                dir.path(),
                &format!("{template}-{i}.pdf"),
                &job(name, template, None),
            );
            let text = pdftotext(&pdf);
            // Poppler's layout mode drops some zero-width marks (Khmer U+17CB
            // over a consonant); its reading-order mode (-raw) keeps them.
            let raw = pdftotext_raw(&pdf);
            assert!(
                text.contains(name)
                    || bare(&text).contains(&bare(name))
                    || bare(&raw).contains(&bare(name)),
                "{script} ({template}): pdftotext does not give back {name:?}:\n{text}"
            );
            for (font, emb, sub, uni) in pdffonts(&pdf) {
                assert_eq!(
                    (emb.as_str(), sub.as_str(), uni.as_str()),
                    ("yes", "yes", "yes"),
                    "{script} ({template}): {font}"
                );
                assert!(font.contains('+'), "{script}: {font} is not a subset");
            }
        }
    }
}

#[test]
fn cjk_names_get_the_face_of_their_language() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("山田さくら", None, "CJKjp"),
        ("김민준", None, "CJKkr"),
        ("陳大文", Some("zh-Hant"), "CJKtc"),
        ("陳大文", Some("zh-TW"), "CJKtc"),
        ("陈大文", Some("zh-Hans"), "CJKsc"),
        ("山田太郎", Some("ja"), "CJKjp"),
        ("王小明", None, "CJKsc"),
    ];
    for template in ["classic", "letter"] {
        for (i, (name, lang, face)) in cases.iter().enumerate() {
            let pdf = render(
                dir.path(),
                &format!("{template}-{i}.pdf"),
                &job(name, template, *lang),
            );
            let fonts: Vec<String> = pdffonts(&pdf).into_iter().map(|f| f.0).collect();
            let cjk: Vec<&String> = fonts.iter().filter(|f| f.contains("CJK")).collect();
            assert!(
                !cjk.is_empty() && cjk.iter().all(|f| f.contains(face)),
                "{name} (lang {lang:?}, {template}): want {face}, got {fonts:?}"
            );
            assert!(bare(&pdftotext(&pdf)).contains(&bare(name)), "{name}");
        }
    }
}

#[test]
fn a_script_without_an_installed_font_is_refused_with_whole_characters() {
    // Cypro-Minoan (historic): no installed font has it.
    let cat = renderer().catalog();
    let e = cat
        .check("classic", &[("name", "\u{12F90}\u{12F91} Ankh")])
        .unwrap_err();
    assert_eq!(e.field, "name");
    assert!(
        e.message
            .contains("\u{12F90} (U+12F90, Cypro Minoan), \u{12F91} (U+12F91, Cypro Minoan)")
            && e.message.contains("(script: Cypro Minoan)")
            && !e.message.contains('\u{FFFD}'),
        "{}",
        e.message
    );
    // The workserver agrees, and tells the operator what (not) to install.
    let err = renderer()
        .render(
            &job("\u{12F90} Ankh", "classic", None),
            &RenderContext {
                verify_url: VERIFY_URL,
                signature: None,
            },
        )
        .err()
        .expect("refused");
    assert!(err.to_string().contains("Cypro Minoan"), "{err}");
}

#[test]
fn a_course_or_template_lang_picks_the_face_when_the_request_gives_none() {
    let src = testamur::devcluster::default_templates();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("art")).unwrap();
    for e in std::fs::read_dir(src.join("art")).unwrap().flatten() {
        std::fs::copy(e.path(), dir.path().join("art").join(e.file_name())).unwrap();
    }
    for f in ["index.toml", "classic.toml", "letter.toml"] {
        let mut text = std::fs::read_to_string(src.join(f)).unwrap();
        if f == "letter.toml" {
            text = format!("lang = \"zh-Hant\"\n{text}");
        }
        if f == "index.toml" {
            text = text.replacen(
                "[courses]\n",
                "[courses]\n\"course-v1:KoreaX+*\" = { template = \"letter\", lang = \"ko\" }\n",
                1,
            );
        }
        std::fs::write(dir.path().join(f), text).unwrap();
    }
    let r = Renderer::load(dir.path()).unwrap();
    let faces_in = |course: &str, lang: Option<&str>| {
        let mut j = job("陳大文", "letter", lang);
        j.course_id = CourseId::parse(course).unwrap();
        let pdf = r
            .render(
                &j,
                &RenderContext {
                    verify_url: VERIFY_URL,
                    signature: None,
                },
            )
            .unwrap()
            .pdf;
        let p = dir.path().join("out.pdf");
        std::fs::write(&p, pdf).unwrap();
        pdffonts(&p)
            .into_iter()
            .map(|f| f.0)
            .filter(|f| f.contains("CJK"))
            .collect::<Vec<_>>()
    };
    let faces = |lang: Option<&str>| faces_in("course-v1:TestX+T1+2026", lang);
    // The course rule's lang comes before the template's.
    let ko = faces_in("course-v1:KoreaX+K1+2026", None);
    assert!(
        !ko.is_empty() && ko.iter().all(|f| f.contains("CJKkr")),
        "{ko:?}"
    );
    let ja = faces_in("course-v1:KoreaX+K1+2026", Some("ja"));
    assert!(ja.iter().all(|f| f.contains("CJKjp")), "{ja:?}");
    assert!(
        faces(None).iter().all(|f| f.contains("CJKtc")),
        "{:?}",
        faces(None)
    );
    // The request's lang comes first.
    let ja = faces(Some("ja"));
    assert!(
        !ja.is_empty() && ja.iter().all(|f| f.contains("CJKjp")),
        "{ja:?}"
    );
}

/// The same corpus through a real cluster: the CC (with the catalogue the
/// workserver registered) accepts every name, the workserver draws it, the
/// published PDF gives it back; a Cypro-Minoan name is a 422 naming the script.
#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_accepts_and_prints_every_installed_script() {
    use std::time::Duration;
    let c = crate::helpers::cluster(|s| s.workservers = 1).await;
    c.wait_workservers(1, Duration::from_secs(30))
        .await
        .unwrap();
    let lms = c.lms().unwrap();
    let mut ids = Vec::new();
    for (i, (script, name)) in CORPUS.iter().enumerate() {
        let mut r = testamur::cmd::demo::sample_request(i);
        r.username = Some(format!("script{i:02}"));
        r.name = Some((*name).into());
        let a = lms.submit(&r).await.unwrap();
        let a = a.unwrap_or_else(|e| panic!("{script}: refused: {}", e.message));
        ids.push((script, name, a.cert_id));
    }
    for (script, name, id) in ids {
        let cert = lms
            .wait_final(id.as_str(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            cert.state,
            testamur_common::state::CertState::Downloadable,
            "{script}: {:?}",
            cert.error_reason
        );
        let du = cert.download_uuid.as_ref().unwrap();
        let pdf = crate::helpers::public_file(&c, &format!("downloads/{du}/Certificate.pdf"));
        let (text, raw) = (pdftotext(&pdf), pdftotext_raw(&pdf));
        assert!(
            bare(&text).contains(&bare(name)) || bare(&raw).contains(&bare(name)),
            "{script}: {name:?} not in the published PDF:\n{text}"
        );
    }
    let mut bad = testamur::cmd::demo::sample_request(99);
    bad.name = Some("\u{12F90}\u{12F91}".into());
    let e = lms.submit(&bad).await.unwrap().unwrap_err();
    assert_eq!((e.status, e.field.as_deref()), (422, Some("name")));
    assert!(
        e.message.contains("\u{12F90} (U+12F90, Cypro Minoan)")
            && e.message.contains("script: Cypro Minoan"),
        "{}",
        e.message
    );
}
