//! Tests of fitting text into boxes: the common path, more lines before going
//! under the smallest size, words broken as a last resort, and nothing at all
//! rather than text below the smallest size (issue 13 item 6).

use std::sync::OnceLock;

use super::*;
use crate::render::template::Templates;

/// The shipped templates' fonts, loaded once.
fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        Templates::load(&dir).expect("the shipped templates load (scripts/setup.sh fonts)")
    })
}

fn fit_text(text: &str, spec: &FitSpec) -> Option<Fitted> {
    let t = templates();
    let stack = t.stacks.iter().find(|s| s.name == "serif-bold").unwrap();
    let shaped = shape(text, stack, &t.fonts, Region::Sc).unwrap();
    fit(&shaped, &t.fonts, spec)
}

/// A name box like classic's: 237 x 22 mm, 16 to 40 pt, one line.
const NAME_BOX: FitSpec = FitSpec {
    width_pt: 671.8,
    height_pt: 62.4,
    min_size: 16.0,
    max_size: 40.0,
    max_lines: 1,
    leading: 1.0,
};

const LONG: &str = "Pablo Diego José Francisco de Paula Juan Nepomuceno María de los Remedios \
                    Cipriano Ruiz y Picasso";

fn widest_line(f: &Fitted) -> f32 {
    f.lines.iter().map(|l| l.width * f.size).fold(0.0, f32::max)
}

#[test]
fn text_that_fits_keeps_its_line_and_largest_size() {
    let f = fit_text("Zoë Ångström", &NAME_BOX).unwrap();
    assert_eq!((f.lines.len(), f.size, f.split_words), (1, 40.0, false));
    // A longer name shrinks on its one line while that stays at 16 pt or more.
    let f = fit_text(
        "Maximiliana Alexandra Bartholomea Fitzgerald-Worthington",
        &NAME_BOX,
    )
    .unwrap();
    assert_eq!(f.lines.len(), 1);
    assert!(f.size >= 16.0 && f.size < 40.0, "{}", f.size);
}

#[test]
fn a_name_too_long_for_one_line_gets_a_second_before_going_under_the_minimum() {
    // At 16 pt this name is wider than the box: before, it shrank to about 13 pt.
    let one_line = fit_text(
        LONG,
        &FitSpec {
            min_size: 1.0,
            height_pt: 30.0,
            ..NAME_BOX
        },
    )
    .unwrap();
    assert!(one_line.size < 16.0, "{}", one_line.size);
    let f = fit_text(LONG, &NAME_BOX).unwrap();
    assert_eq!(f.lines.len(), 2);
    assert!(f.size >= NAME_BOX.min_size, "{}", f.size);
    assert!(!f.split_words);
    assert!(widest_line(&f) <= NAME_BOX.width_pt + 0.01);
    assert!(
        f.height_pt() <= NAME_BOX.height_pt + 0.01,
        "{}",
        f.height_pt()
    );
}

#[test]
fn a_word_wider_than_a_line_is_broken_between_characters_as_a_last_resort() {
    let word = "Wolfeschlegelsteinhausenbergerdorffwelchevoralternwarengewissenhaftschaferswessen";
    let f = fit_text(word, &NAME_BOX).unwrap();
    assert!(
        f.split_words && f.lines.len() == 2,
        "{} lines",
        f.lines.len()
    );
    assert!(f.size >= 16.0 && widest_line(&f) <= NAME_BOX.width_pt + 0.01);
    // Every character is still there, in order.
    let drawn: usize = f
        .lines
        .iter()
        .flat_map(|l| &l.runs)
        .map(|r| r.text.len())
        .sum();
    assert_eq!(drawn, word.len());
}

#[test]
fn text_that_cannot_fit_at_the_minimum_is_not_set_at_all() {
    let name = LONG.repeat(3);
    assert!(fit_text(&name, &NAME_BOX).is_none());
    // A box lower than one line at the smallest size holds nothing.
    let low = FitSpec {
        height_pt: 10.0,
        ..NAME_BOX
    };
    assert!(fit_text("Ana", &low).is_none());
}

#[test]
fn lines_a_box_holds() {
    assert_eq!(lines_in(3.9, 1.362, 1.362), 2);
    assert_eq!(lines_in(4.1, 1.362, 1.362), 3);
    assert_eq!(lines_in(1.0, 1.362, 1.362), 0);
    assert_eq!(lines_in(1000.0, 1.0, 1.0), MAX_OVERFLOW_LINES);
}
