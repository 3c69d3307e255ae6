//! Small helpers: hashing, a keyed bijection (for unique mobiles and ids), weighted choice, and
//! allocation-free formatting of ids, money and times.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use rand::Rng;

/// SplitMix64 finaliser: a good 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1) from a hash.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A keyed bijection on `[0, domain)`: a 4-round Feistel network on the smallest even number of
/// bits covering `domain`, with cycle walking. `x` must be `< domain`.
pub fn permute(x: u64, domain: u64, key: u64) -> u64 {
    debug_assert!(x < domain);
    let bits = (64 - (domain - 1).leading_zeros()).max(2);
    let half = bits.div_ceil(2);
    let mask = (1u64 << half) - 1;
    let mut v = x;
    loop {
        let (mut l, mut r) = (v >> half, v & mask);
        for round in 0..4u64 {
            let f = mix(r ^ key.wrapping_add(round.wrapping_mul(0x51_7CC1_B727_220A))) & mask;
            (l, r) = (r, l ^ f);
        }
        v = (l << half) | r;
        if v < domain {
            return v;
        }
    }
}

/// Weighted choice over a fixed table.
pub struct Weighted {
    cum: Vec<f64>,
}

impl Weighted {
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Weighted {
        let mut cum = Vec::new();
        let mut s = 0.0;
        for w in weights {
            s += w;
            cum.push(s);
        }
        Weighted { cum }
    }

    pub fn pick<R: Rng>(&self, rng: &mut R) -> usize {
        let x = rng.gen::<f64>() * self.cum[self.cum.len() - 1];
        self.cum.partition_point(|&c| c <= x).min(self.cum.len() - 1)
    }
}

/// Writes the decimal digits of `n`, left-padded with zeros to `width`, after `prefix`.
pub fn fmt_id<'a>(buf: &'a mut [u8; 32], prefix: &[u8], n: u64, width: usize) -> &'a [u8] {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let nd = digits.len() - i;
    let pad = width.saturating_sub(nd);
    let mut len = 0;
    for &b in prefix {
        buf[len] = b;
        len += 1;
    }
    for _ in 0..pad {
        buf[len] = b'0';
        len += 1;
    }
    buf[len..len + nd].copy_from_slice(&digits[i..]);
    &buf[..len + nd]
}

/// `12850` → `128.50`, `-320` → `-3.20`.
pub fn fmt_money(buf: &mut [u8; 32], cents: i64) -> &[u8] {
    let neg = cents < 0;
    let c = cents.unsigned_abs();
    let mut tmp = [0u8; 32];
    let whole = fmt_id(&mut tmp, if neg { b"-" } else { b"" }, c / 100, 1);
    let n = whole.len();
    buf[..n].copy_from_slice(whole);
    buf[n] = b'.';
    buf[n + 1] = b'0' + (c % 100 / 10) as u8;
    buf[n + 2] = b'0' + (c % 10) as u8;
    &buf[..n + 3]
}

fn put2(buf: &mut [u8], at: usize, v: u32) {
    buf[at] = b'0' + (v / 10 % 10) as u8;
    buf[at + 1] = b'0' + (v % 10) as u8;
}

/// `YYYY-MM-DD` (years 0–9999).
pub fn fmt_date(buf: &mut [u8; 32], d: NaiveDate) -> &[u8] {
    let y = d.year().clamp(0, 9999) as u32;
    put2(buf, 0, y / 100);
    put2(buf, 2, y % 100);
    buf[4] = b'-';
    put2(buf, 5, d.month());
    buf[7] = b'-';
    put2(buf, 8, d.day());
    &buf[..10]
}

/// `YYYY-MM-DD HH:MM:SS`.
pub fn fmt_datetime(buf: &mut [u8; 32], t: NaiveDateTime) -> &[u8] {
    fmt_date(buf, t.date());
    buf[10] = b' ';
    put2(buf, 11, t.hour());
    buf[13] = b':';
    put2(buf, 14, t.minute());
    buf[16] = b':';
    put2(buf, 17, t.second());
    &buf[..19]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_is_a_bijection() {
        let domain = 1000;
        let mut seen = vec![false; domain as usize];
        for x in 0..domain {
            let y = permute(x, domain, 42);
            assert!(y < domain && !seen[y as usize]);
            seen[y as usize] = true;
        }
    }

    #[test]
    fn formatting() {
        let mut b = [0u8; 32];
        assert_eq!(fmt_id(&mut b, b"C", 42, 7), b"C0000042");
        assert_eq!(fmt_id(&mut b, b"O", 1_234_567_890, 9), b"O1234567890");
        assert_eq!(fmt_money(&mut b, 12850), b"128.50");
        assert_eq!(fmt_money(&mut b, 5), b"0.05");
        assert_eq!(fmt_money(&mut b, -320), b"-3.20");
        let t = NaiveDate::from_ymd_opt(2025, 3, 4).unwrap().and_hms_opt(8, 5, 9).unwrap();
        assert_eq!(fmt_datetime(&mut b, t), b"2025-03-04 08:05:09");
    }
}
