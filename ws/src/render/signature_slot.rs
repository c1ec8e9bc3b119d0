//! The PDF's signature field as the renderer writes it: an invisible widget on the
//! page and its signature dictionary with placeholders that `crate::pdf_sign`
//! fills in place once the file is complete (so it is written once).

use pdf_writer::{Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// An invisible signature field whose signature dictionary is written with
/// placeholders: `/ByteRange` [`BYTE_RANGE_PLACEHOLDER`] and `/Contents` a hex
/// string of `contents_len` zero bytes, which the signer overwrites in place.
#[derive(Debug, Clone, Copy)]
pub struct SignatureSlot {
    /// When it is signed, [year, month, day, hour, minute, second] in UTC (the
    /// dictionary's `/M`).
    pub time: [u16; 6],
    /// Bytes reserved for the CMS signature.
    pub contents_len: usize,
}

/// What the signature dictionary's `/ByteRange` is written as before signing:
/// as wide as any real range of a PDF under 2 GB (the signer pads with spaces).
pub const BYTE_RANGE_PLACEHOLDER: &[u8] = b"/ByteRange [0 2147483647 2147483647 2147483647]";

/// The signature field (an invisible widget on the page) and its signature
/// dictionary, with placeholders for the byte range and the CMS signature.
pub(super) fn write_signature_slot(
    pdf: &mut Pdf,
    slot: &SignatureSlot,
    field: Ref,
    sig: Ref,
    page: Ref,
) {
    let mut f = pdf.indirect(field).dict();
    f.pair(Name(b"Type"), Name(b"Annot"))
        .pair(Name(b"Subtype"), Name(b"Widget"))
        .pair(Name(b"FT"), Name(b"Sig"))
        .pair(Name(b"T"), TextStr("Signature"))
        .pair(Name(b"V"), sig)
        .pair(Name(b"P"), page)
        .pair(Name(b"Rect"), Rect::new(0.0, 0.0, 0.0, 0.0))
        // Print | Locked.
        .pair(Name(b"F"), 132);
    f.finish();
    let date = pdf_time(slot.time);
    let mut d = pdf.indirect(sig).dict();
    d.pair(Name(b"Type"), Name(b"Sig"))
        .pair(Name(b"Filter"), Name(b"Adobe.PPKLite"))
        .pair(Name(b"SubFilter"), Name(b"ETSI.CAdES.detached"))
        .pair(Name(b"M"), date);
    // The placeholders, last: /ByteRange then /Contents (a hex string: bytes
    // that are not ASCII are written in hex).
    d.insert(Name(b"ByteRange"))
        .array()
        .items([0, i32::MAX, i32::MAX, i32::MAX]);
    d.pair(Name(b"Contents"), Str(&vec![0x80u8; slot.contents_len]));
    d.finish();
}

/// [year, month, day, hour, minute, second] in UTC as a PDF date.
pub(super) fn pdf_time([y, mo, d, h, mi, s]: [u16; 6]) -> pdf_writer::Date {
    pdf_writer::Date::new(y)
        .month(mo as u8)
        .day(d as u8)
        .hour(h as u8)
        .minute(mi as u8)
        .second(s as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}
