//! Claim codes: `XXXX-XXXX-XXXXXX` in Crockford's base32 alphabet (no I, L,
//! O or U), 15 random characters (75 bits) and a Luhn mod 32 check character,
//! so a mistyped or swapped character is caught before any lookup.

use rand::Rng;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a claim code, without dashes.
pub const LEN: usize = 16;

fn value_of(c: u8) -> Option<usize> {
    ALPHABET.iter().position(|&a| a == c)
}

/// Luhn mod N check character over `payload` (base-32 digits).
fn check_char(payload: &[u8]) -> u8 {
    let mut sum = 0usize;
    let mut factor = 2;
    for &c in payload.iter().rev() {
        let v = value_of(c).unwrap_or(0);
        let mut addend = factor * v;
        factor = if factor == 2 { 1 } else { 2 };
        addend = addend / 32 + addend % 32;
        sum += addend;
    }
    ALPHABET[(32 - sum % 32) % 32]
}

/// A new random claim code in canonical form (16 characters, no dashes).
pub fn generate() -> String {
    let mut rng = rand::rng();
    let mut code: Vec<u8> = (0..LEN - 1)
        .map(|_| ALPHABET[rng.random_range(0..32)])
        .collect();
    code.push(check_char(&code));
    String::from_utf8(code).unwrap_or_default()
}

/// Normalises user input: case, spaces and dashes ignored, O→0, I/L→1.
/// Returns the canonical form, or None when it is not a valid code (wrong
/// length, foreign character or a failed check character).
pub fn normalize(input: &str) -> Option<String> {
    let mut out = Vec::with_capacity(LEN);
    for c in input.chars() {
        let c = c.to_ascii_uppercase();
        let mapped = match c {
            ' ' | '-' | '\t' => continue,
            'O' => b'0',
            'I' | 'L' => b'1',
            c if c.is_ascii() && value_of(c as u8).is_some() => c as u8,
            _ => return None,
        };
        out.push(mapped);
        if out.len() > LEN {
            return None;
        }
    }
    if out.len() != LEN || check_char(&out[..LEN - 1]) != out[LEN - 1] {
        return None;
    }
    String::from_utf8(out).ok()
}

/// The printed form `XXXX-XXXX-XXXXXX` of a canonical code.
pub fn display(canonical: &str) -> String {
    if canonical.len() != LEN {
        return canonical.to_string();
    }
    format!(
        "{}-{}-{}",
        &canonical[..4],
        &canonical[4..8],
        &canonical[8..]
    )
}

/// The merchant code: the last group of the printed form.
pub fn merchant_code(canonical: &str) -> String {
    canonical.get(8..).unwrap_or("").to_string()
}

/// A log-safe form: the first group only.
pub fn redacted(canonical: &str) -> String {
    format!("{}-****", canonical.get(..4).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_validate() {
        for _ in 0..1000 {
            let c = generate();
            assert_eq!(c.len(), LEN);
            assert_eq!(normalize(&c).as_deref(), Some(c.as_str()));
            assert_eq!(normalize(&display(&c)).as_deref(), Some(c.as_str()));
        }
    }

    #[test]
    fn normalises_lookalikes_case_and_spacing() {
        // Build a code containing 0 and 1 so the look-alike mapping matters.
        let mut payload = b"01AB01AB01AB01A".to_vec();
        payload.push(check_char(&payload));
        let canonical = String::from_utf8(payload).unwrap();
        let sloppy = format!(
            " o{}-{} ",
            canonical[1..8].to_lowercase().replace('1', "l"),
            &canonical[8..].replace('1', "I")
        );
        assert_eq!(normalize(&sloppy), Some(canonical.clone()));
        assert_eq!(display(&canonical).len(), 18);
        assert_eq!(merchant_code(&canonical), canonical[8..].to_string());
    }

    #[test]
    fn every_single_substitution_is_caught() {
        let c = generate().into_bytes();
        for i in 0..LEN {
            for &a in ALPHABET.iter() {
                if a == c[i] {
                    continue;
                }
                let mut typo = c.clone();
                typo[i] = a;
                assert_eq!(normalize(std::str::from_utf8(&typo).unwrap()), None);
            }
        }
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("ABCD"), None);
        assert_eq!(normalize("UUUU-UUUU-UUUUUU"), None);
        assert_eq!(normalize("ÄÄÄÄ-ÄÄÄÄ-ÄÄÄÄÄÄ"), None);
        assert_eq!(normalize(&"0".repeat(100)), None);
    }
}
