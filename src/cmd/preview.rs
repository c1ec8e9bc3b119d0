//! `testamur preview`: render one certificate from a templates folder to a PDF file,
//! without a cluster, so template designers see their changes at once. It checks
//! the values as a CC with this catalogue would (characters no font has, values
//! longer than the template's boxes hold: refused, as a 422 would), and says which
//! blocks needed more lines than they ask.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use testamur_common::ids::{CertId, CourseId, PublicUuid, Username};
use testamur_common::wire::JobCertificate;

#[derive(Args)]
pub struct PreviewArgs {
    /// Where to write the PDF.
    #[arg(long, default_value = "preview.pdf")]
    out: PathBuf,
    /// Templates folder (default: the repository's `templates`).
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Template name (default: what the course mapping or the default gives).
    #[arg(long)]
    template: Option<String>,
    #[arg(long, default_value = "Zoë Ångström")]
    name: String,
    #[arg(long, default_value = "Introduction to Typography")]
    course_name: String,
    #[arg(long, default_value = "course-v1:TestX+T1+2026")]
    course_id: String,
    #[arg(long, default_value = "TestX University")]
    org: String,
    #[arg(long)]
    grade: Option<String>,
    #[arg(long)]
    designation: Option<String>,
    #[arg(long, default_value = "2026-11-23")]
    issued_date: String,
    /// The learner's language (BCP 47): picks the CJK face of a Han-only name.
    #[arg(long)]
    lang: Option<String>,
}

pub fn run(a: PreviewArgs) -> anyhow::Result<ExitCode> {
    let dir = a
        .templates
        .clone()
        .unwrap_or_else(crate::devcluster::default_templates);
    let renderer = testamur_ws::render::Renderer::load(&dir)?;
    for w in renderer.warnings() {
        eprintln!("warning: {w}");
    }
    let course = CourseId::parse(a.course_id.clone()).context("--course-id")?;
    let user = Username::parse("preview").context("username")?;
    let job = JobCertificate {
        cert_id: CertId::for_pair(&course, &user),
        course_id: course,
        username: user,
        name: Some(a.name),
        course_name: Some(a.course_name),
        org: Some(a.org).filter(|o| !o.is_empty()),
        grade: a.grade,
        designation: a.designation,
        issued_date: a.issued_date,
        template: a.template,
        lang: a.lang,
        download_uuid: Some(PublicUuid::generate()),
        verify_uuid: Some(PublicUuid::generate()),
        previous: None,
        requested_at: None,
        status: None,
    };
    let verify_url = "https://certs.example.org/cert/00000000-0000-4000-8000-000000000000/";
    renderer.check_verify_url(verify_url)?;
    let catalog = renderer.catalog();
    let template = catalog
        .resolve(job.template.as_deref(), job.course_id.as_str())
        .context("--template")?
        .to_owned();
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let (name, course, org, grade, designation) = (
        o(&job.name),
        o(&job.course_name),
        o(&job.org),
        o(&job.grade),
        o(&job.designation),
    );
    let values = [
        ("name", name.as_str()),
        ("course_name", course.as_str()),
        ("org", org.as_str()),
        ("grade", grade.as_str()),
        ("designation", designation.as_str()),
        ("course_id", job.course_id.as_str()),
    ];
    if let Err(e) = catalog.check(&template, &values) {
        eprintln!(
            "error: a CC with these templates refuses this certificate at submit (422, field \
             `{}`): {}",
            e.field, e.message
        );
        return Ok(ExitCode::FAILURE);
    }
    let out = renderer.render(
        &job,
        &testamur_ws::render::RenderContext {
            verify_url,
            signature: None,
        },
    )?;
    for note in &out.notes {
        println!("note: template {}: {note}", out.template);
    }
    std::fs::write(&a.out, &out.pdf).with_context(|| format!("writing {}", a.out.display()))?;
    let version = renderer
        .catalog()
        .templates
        .get(&out.template)
        .map(|t| t.version.as_str())
        .unwrap_or("");
    let room = renderer
        .limits()
        .into_iter()
        .find(|(t, _)| *t == out.template)
        .map(|(_, l)| {
            l.iter()
                .map(|(f, w)| format!("{f} {w}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        "{}: template {} (version {version}), {} bytes; room at the smallest sizes \
         (characters; CJK count 2): {room}",
        a.out.display(),
        out.template,
        out.pdf.len()
    );
    Ok(ExitCode::SUCCESS)
}
