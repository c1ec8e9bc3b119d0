//! ASCII armor (RFC 9580 section 6.2) of the detached signatures we make, read
//! strictly when a workserver checks its own signature before publishing it.
//! sequoia's armor reader guesses its input's shape (armored or binary, which
//! kind, how damaged), which cost as much as the Ed25519 check itself; a
//! signature we just wrote has one shape, and anything else is refused.

const ARMOR_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";
const ARMOR_END: &str = "-----END PGP SIGNATURE-----";

/// The packet of an ASCII-armored signature (RFC 9580 section 6.2) as
/// `sign_hashed_at` writes it: the header line, armor headers if any, a blank
/// line, base64 lines, the CRC-24 line (checked when present), the footer line.
/// Exactly one packet, nothing around it.
pub(crate) fn dearmor_signature(armored: &[u8]) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let text = std::str::from_utf8(armored).map_err(|_| "the signature is not text")?;
    let mut lines = text.lines();
    if lines.next() != Some(ARMOR_BEGIN) {
        return Err(format!("the signature does not begin with {ARMOR_BEGIN}"));
    }
    // Armor headers ("Key: value") end at the first blank line.
    lines
        .by_ref()
        .find(|l| l.trim_end().is_empty())
        .ok_or("the armored signature has no blank line before its data")?;
    let mut body = String::with_capacity(armored.len());
    let mut crc = None;
    for line in lines.by_ref() {
        let line = line.trim_end();
        if line == ARMOR_END {
            let packet = base64::engine::general_purpose::STANDARD
                .decode(&body)
                .map_err(|e| format!("the armored signature's data is not base64: {e}"))?;
            if let Some(want) = crc {
                if crc24(&packet) != want {
                    return Err("the armored signature's checksum does not match its data".into());
                }
            }
            return match lines.all(|l| l.trim().is_empty()) {
                true => Ok(packet),
                false => Err(format!("text after {ARMOR_END}")),
            };
        }
        if line.is_empty() {
            continue;
        }
        if crc.is_some() {
            return Err(format!(
                "data after the armored signature's checksum, before {ARMOR_END}"
            ));
        }
        match line.strip_prefix('=') {
            Some(sum) => {
                let b = base64::engine::general_purpose::STANDARD
                    .decode(sum)
                    .ok()
                    .filter(|b| b.len() == 3)
                    .ok_or("the armored signature's checksum is not 3 bytes of base64")?;
                crc = Some(u32::from_be_bytes([0, b[0], b[1], b[2]]));
            }
            None => body.push_str(line),
        }
    }
    Err(format!("the signature does not end with {ARMOR_END}"))
}

/// The armor checksum (RFC 9580 section 6.1.1).
fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xB7_04CE;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x100_0000 != 0 {
                crc ^= 0x186_4CFB;
            }
        }
    }
    crc & 0xFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;
    use openpgp::parse::Parse;
    use openpgp::serialize::SerializeInto;
    use sequoia_openpgp as openpgp;

    #[test]
    fn our_own_armor_is_read_strictly() {
        let (secret, _, _) = crate::sign::generate_key("test <t@example.org>").unwrap();
        let key = crate::sign::SigningKey::from_cert(
            openpgp::Cert::from_bytes(secret.as_bytes()).unwrap(),
        )
        .unwrap();
        let sig = key.sign_detached(b"data").unwrap();
        // The packet inside is what sequoia's own armor reader finds.
        let packet = dearmor_signature(&sig).unwrap();
        let pile = openpgp::PacketPile::from_bytes(&sig).unwrap();
        assert_eq!(packet, pile.to_vec().unwrap());
        let text = String::from_utf8(sig.clone()).unwrap();
        assert!(text.lines().any(|l| l.starts_with('=')), "{text}");
        // Anything else is refused, with a reason.
        let flip_data = {
            let i = text.find("\n\n").unwrap() + 2;
            let mut b = text.clone().into_bytes();
            b[i + 5] = if b[i + 5] == b'A' { b'B' } else { b'A' };
            b
        };
        let no_crc: String = text
            .lines()
            .filter(|l| !l.starts_with('='))
            .map(|l| format!("{l}\n"))
            .collect();
        for (bad, why) in [
            (flip_data, "checksum"),
            (text.replace(ARMOR_END, "").into_bytes(), "does not end"),
            (format!("x{text}").into_bytes(), "does not begin"),
            (format!("{text}more\n").into_bytes(), "text after"),
            (text.replacen("\n\n", "\n", 1).into_bytes(), "blank line"),
        ] {
            let e = dearmor_signature(&bad).unwrap_err();
            assert!(e.contains(why), "{e}");
            assert!(key.verify_detached(b"data", &bad).is_err());
        }
        // Without the (optional) checksum it still reads.
        assert_eq!(dearmor_signature(no_crc.as_bytes()).unwrap(), packet);
        key.verify_detached(b"data", no_crc.as_bytes()).unwrap();
    }
}
