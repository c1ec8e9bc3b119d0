//! A template file (templates/*.toml): parsed and checked the way
//! `Templates::load` checks each one, against the repository's font stacks, as
//! if it were a file of the repository's templates directory (so `background`
//! and signatory `image` paths resolve there).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = testamur_fuzz::text(data) else {
        return;
    };
    let dir = testamur_fuzz::repo().join("templates");
    let t = testamur_fuzz::templates();
    if let Ok(tpl) = t.template_from_toml(&dir, &dir.join("fuzzed.toml"), text) {
        for b in &tpl.texts {
            assert!(b.stack < t.stacks.len());
            assert!(b.min_size <= b.max_size);
        }
    }
});
