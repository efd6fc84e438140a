//! Basic-auth header decoding (one header does not justify a base64 crate).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decodes `Basic <base64(user:pass)>` into `(user, pass)`.
pub fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?.trim().trim_end_matches('=');
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in encoded.bytes() {
        let value = u32::try_from(ALPHABET.iter().position(|c| *c == byte)?).ok()?;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from(bits >> count).ok()?);
            bits &= (1 << count) - 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::decode_basic;

    #[test]
    fn basic_credentials_decode() {
        // base64("a@b.c:tok") = "YUBiLmM6dG9r"
        assert_eq!(decode_basic("Basic YUBiLmM6dG9r"), Some(("a@b.c".to_owned(), "tok".to_owned())));
        assert_eq!(decode_basic("Bearer x"), None);
    }
}
