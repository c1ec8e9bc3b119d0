//! Just enough DER for CMS: writing the few structures a PAdES signature holds
//! (definite lengths, the tags they use) and reading the parts of an X.509
//! certificate the signature names (issuer, serial number, public key).

/// One TLV: `tag`, then the length, then `content`.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A SET OF: DER sorts its elements by their encodings.
pub fn set_of(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.sort();
    tlv(0x31, &parts.concat())
}

pub fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

pub fn int(v: u8) -> Vec<u8> {
    tlv(0x02, &[v])
}

/// An OBJECT IDENTIFIER from its dotted form (`"1.2.840.113549.1.7.2"`).
pub fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap_or(0)).collect();
    let mut body = vec![(arcs[0] * 40 + arcs.get(1).copied().unwrap_or(0)) as u8];
    for &a in arcs.iter().skip(2) {
        let mut chunk = vec![(a & 0x7f) as u8];
        let mut rest = a >> 7;
        while rest > 0 {
            chunk.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    tlv(0x06, &body)
}

/// A TLV read from DER: its tag, its content, and all of its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// The first TLV of `b`, and what follows it.
pub fn read(b: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for &x in b.get(2..2 + n)? {
            len = (len << 8) | x as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    let raw = b.get(..end)?;
    Some((
        Tlv {
            tag,
            content: &raw[head..],
            raw,
        },
        &b[end..],
    ))
}

/// The TLVs inside a constructed `content`, in order.
pub fn children(mut content: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (t, rest) = read(content)?;
        out.push(t);
        content = rest;
    }
    Some(out)
}

/// What a signature needs of its signer's certificate (DER).
pub struct CertParts<'a> {
    /// The issuer's Name and the serial number INTEGER, each as encoded.
    pub issuer: &'a [u8],
    pub serial: &'a [u8],
    /// The subject public key's BIT STRING content (unused-bits byte first).
    pub public_key: &'a [u8],
}

/// Reads `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?,
/// serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... } ... }`.
pub fn cert_parts(cert: &[u8]) -> Option<CertParts<'_>> {
    let (c, _) = read(cert)?;
    let tbs = *children(c.content)?.first()?;
    let f = children(tbs.content)?;
    let i = usize::from(f.first()?.tag == 0xa0);
    let spki = children(f.get(i + 5)?.content)?;
    let key = spki.get(1).filter(|k| k.tag == 0x03)?;
    Some(CertParts {
        serial: f.get(i)?.raw,
        issuer: f.get(i + 2)?.raw,
        public_key: key.content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_object_identifiers_are_encoded_as_der_says() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(read(&long).unwrap().0.content.len(), 300);
        // 1.2.840.113549.1.7.2 (signedData).
        assert_eq!(
            oid("1.2.840.113549.1.7.2"),
            [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]
        );
        assert_eq!(set_of(vec![vec![2], vec![1]]), [0x31, 2, 1, 2]);
        assert!(read(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(read(&[0x30, 5, 1]).is_none());
    }
}
