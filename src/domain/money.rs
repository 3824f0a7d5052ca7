//! Money: integer cents, parsed strictly, divided without losing a cent.

use serde_json::Value;

/// The largest amount accepted anywhere (10^10 cents = $100,000,000).
pub const MAX_CENTS: i64 = 10_000_000_000;

/// Parses a JSON integer or a string of digits into cents (0 ..= MAX_CENTS).
/// Negative, fractional, non-numeric and absurd amounts are refused with a
/// sentence for the error's `details`.
pub fn parse_cents(value: &Value) -> Result<i64, String> {
    let n: i64 = match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i
            } else if n.as_u64().is_some() {
                return Err(too_large());
            } else {
                return Err("must be a whole number of cents".to_string());
            }
        }
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err("must be a whole number of cents (digits only)".to_string());
            }
            if t.len() > 11 {
                return Err(too_large());
            }
            t.parse().map_err(|_| too_large())?
        }
        _ => return Err("must be a whole number of cents".to_string()),
    };
    if n < 0 {
        return Err("must not be negative".to_string());
    }
    if n > MAX_CENTS {
        return Err(too_large());
    }
    Ok(n)
}

/// Like `parse_cents`, but zero is refused too.
pub fn parse_positive_cents(value: &Value) -> Result<i64, String> {
    match parse_cents(value)? {
        0 => Err("must be greater than zero".to_string()),
        n => Ok(n),
    }
}

fn too_large() -> String {
    format!("must not exceed {MAX_CENTS} cents")
}

/// The paid value left on `remaining` cents of face of a certificate whose
/// paid share is reckoned against `basis_face`/`basis_price` (its face and
/// price when it was sold).
///
/// Rounding is cumulative: the value spent so far, `basis_face - remaining`,
/// has used `floor(basis_price × spent / basis_face)` of the price, so any
/// sequence of redemptions and splits ends on the same paid figures as one
/// step of the same total (300 one-cent redemptions of a 10000 card sold
/// for 3333 leave 3234 paid, as one 300-cent redemption does). The result
/// never exceeds `remaining` nor `basis_price`, and only grows with it.
pub fn paid_left(basis_face: i64, basis_price: i64, remaining: i64) -> i64 {
    if basis_face <= 0 || remaining >= basis_face {
        return basis_price;
    }
    let spent = (basis_face - remaining.max(0)) as i128;
    basis_price - ((basis_price as i128 * spent) / basis_face as i128) as i64
}

/// An amount for people: `$100`, `$12.50`, `12.50 EUR`.
pub fn format(cents: i64, currency: &str) -> String {
    let whole = cents / 100;
    let frac = cents % 100;
    match (currency, frac) {
        ("USD", 0) => format!("${whole}"),
        ("USD", _) => format!("${whole}.{frac:02}"),
        (other, _) => format!("{whole}.{frac:02} {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_integers_and_digit_strings() {
        assert_eq!(parse_cents(&json!(4000)), Ok(4000));
        assert_eq!(parse_cents(&json!("4000")), Ok(4000));
        assert_eq!(parse_cents(&json!(0)), Ok(0));
        assert_eq!(parse_cents(&json!(MAX_CENTS)), Ok(MAX_CENTS));
    }

    #[test]
    fn refuses_bad_amounts() {
        for bad in [
            json!(-1),
            json!("-1"),
            json!(1.5),
            json!("1.5"),
            json!("abc"),
            json!(""),
            json!(null),
            json!(true),
            json!([1]),
            json!(MAX_CENTS + 1),
            json!("99999999999999999999999"),
            json!(u64::MAX),
            json!(1e300),
        ] {
            assert!(parse_cents(&bad).is_err(), "{bad} accepted");
        }
        assert!(parse_positive_cents(&json!(0)).is_err());
    }

    #[test]
    fn each_refusal_says_why() {
        let digits_only = Err("must be a whole number of cents (digits only)".to_string());
        for bad in ["", " ", "abc", "12a", "-1", "1 2", "1.5"] {
            assert_eq!(parse_cents(&json!(bad)), digits_only, "{bad:?}");
        }
        let whole = Err("must be a whole number of cents".to_string());
        assert_eq!(parse_cents(&json!(1.5)), whole);
        assert_eq!(parse_cents(&json!(null)), whole);
        assert_eq!(
            parse_cents(&json!(-1)),
            Err("must not be negative".to_string())
        );
        assert_eq!(
            parse_positive_cents(&json!("0")),
            Err("must be greater than zero".to_string())
        );
        assert_eq!(parse_positive_cents(&json!(1)), Ok(1));
        assert_eq!(too_large(), "must not exceed 10000000000 cents");
        assert_eq!(parse_cents(&json!(u64::MAX)), Err(too_large()));
        assert_eq!(parse_cents(&json!(MAX_CENTS + 1)), Err(too_large()));
    }

    #[test]
    fn digit_strings_up_to_eleven_digits() {
        // Eleven digits is the longest string read: MAX_CENTS itself.
        assert_eq!(parse_cents(&json!("10000000000")), Ok(MAX_CENTS));
        assert_eq!(parse_cents(&json!(" 0042 ")), Ok(42));
        assert_eq!(parse_cents(&json!("10000000001")), Err(too_large()));
        // Longer is refused before parsing, even when its value is small.
        assert_eq!(parse_cents(&json!("000000000001")), Err(too_large()));
        assert_eq!(
            parse_cents(&json!("99999999999999999999")),
            Err(too_large())
        );
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format(10000, "USD"), "$100");
        assert_eq!(format(1250, "USD"), "$12.50");
        assert_eq!(format(5, "EUR"), "0.05 EUR");
    }

    #[test]
    fn paid_left_rounds_against_the_sale() {
        assert_eq!(paid_left(10000, 3333, 9700), 3234);
        assert_eq!(paid_left(10000, 3333, 10000), 3333);
        assert_eq!(paid_left(10000, 3333, 0), 0);
        assert_eq!(paid_left(3, 1, 2), 1);
        assert_eq!(paid_left(3, 1, 1), 1);
        let big = paid_left(MAX_CENTS, MAX_CENTS, 1);
        assert_eq!(big, 1);
        // More left than the basis (never asked today) is still at most
        // the price, as documented.
        assert_eq!(paid_left(100, 50, 150), 50);
        assert_eq!(paid_left(0, 0, 10), 0);
    }

    proptest::proptest! {
        #[test]
        fn paid_left_keeps_both_parts_valid(price in 0i64..=MAX_CENTS, face in 1i64..=MAX_CENTS, a in 0i64..=MAX_CENTS, b in 0i64..=MAX_CENTS) {
            let price = price.min(face);
            let (low, high) = (a.min(b).min(face), a.max(b).min(face));
            let (kept, before) = (paid_left(face, price, low), paid_left(face, price, high));
            // What stays and what is spent both keep price <= face, which
            // the schema enforces, and neither goes negative.
            proptest::prop_assert!(kept >= 0 && kept <= low && kept <= before);
            proptest::prop_assert!(before - kept <= high - low);
        }
    }
}
