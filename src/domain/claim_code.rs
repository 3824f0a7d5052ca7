//! Claim codes: `XXXX-XXXX-XXXX-XXXX` in Crockford's base32 alphabet (no I,
//! L, O or U), 15 random characters (75 bits) and a Luhn mod 32 check
//! character, so a mistyped or swapped character is caught before any
//! lookup. Codes of any other shape (carried over from another system) are
//! looked up as typed: see `lookup_key`.

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

/// The form a typed code is looked up by. One of our own shape (16
/// characters of our alphabet, look-alikes mapped) must pass its check
/// character: None is a typo, refused before any lookup. Any other shape
/// (`62DD-CV4T-R2NTM2`, a code carried over from another system) is looked
/// up as typed, upper-cased without spaces and dashes, and simply misses
/// when unknown. None too for what no code can be (empty, too long, other
/// characters than ASCII letters and digits).
pub fn lookup_key(input: &str) -> Option<String> {
    if let Some(ours) = normalize(input) {
        return Some(ours);
    }
    let typed: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let our_shape = typed.len() == LEN
        && typed.bytes().all(|b| {
            let b = match b {
                b'O' => b'0',
                b'I' | b'L' => b'1',
                b => b,
            };
            value_of(b).is_some()
        });
    let possible =
        (1..=64).contains(&typed.len()) && typed.bytes().all(|b| b.is_ascii_alphanumeric());
    (possible && !our_shape).then_some(typed)
}

/// The printed form `XXXX-XXXX-XXXX-XXXX` of a canonical code; a code of
/// another shape prints as stored.
pub fn display(canonical: &str) -> String {
    if canonical.len() != LEN {
        return canonical.to_string();
    }
    format!(
        "{}-{}-{}-{}",
        &canonical[..4],
        &canonical[4..8],
        &canonical[8..12],
        &canonical[12..]
    )
}

/// The merchant code: the last two groups of the printed form, without the
/// dash (what a till that shows half the code prints).
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
        assert_eq!(display(&canonical).len(), 19);
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

#[cfg(test)]
mod lookup_tests {
    use super::*;

    #[test]
    fn ours_must_check_and_other_shapes_are_looked_up_as_typed() {
        let c = generate();
        assert_eq!(lookup_key(&display(&c)), Some(c.clone()));
        let mut typo = c.clone().into_bytes();
        typo[3] = if typo[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(lookup_key(std::str::from_utf8(&typo).unwrap()), None);
        assert_eq!(
            lookup_key("62dd-cv4t-r2ntm2"),
            Some("62DDCV4TR2NTM2".to_string())
        );
        assert_eq!(lookup_key(""), None);
        assert_eq!(lookup_key("ab/cd"), None);
        assert_eq!(lookup_key(&"A".repeat(65)), None);
    }
}
