//! Byte-level mutations of a valid document: flips, cuts, repeats and splices of
//! the tokens that break parsers (quotes, brackets, huge numbers, odd Unicode).

use rand::Rng;

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e309",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"0.0000001",
    b"\\u0000",
    b"\\ud800",
    b"\xff\xfe",
    b"\xe2\x80\xae",
    b"\n",
    b"=",
    b"[[[[[[[[[[[[[[[[",
    b"\"\"",
    b"\"1970-01-01T00:00:00Z\"",
    b"\"9999-12-31T23:59:59Z\"",
];

pub fn random_bytes(rng: &mut impl Rng) -> Vec<u8> {
    let len = rng.gen_range(0..256);
    (0..len).map(|_| rng.gen()).collect()
}

/// One to eight random edits of `base`.
pub fn mutate(base: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..rng.gen_range(1..=8) {
        let at = if out.is_empty() {
            0
        } else {
            rng.gen_range(0..out.len())
        };
        match rng.gen_range(0..7) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.gen_range(0..8),
            1 if !out.is_empty() => {
                let end = (at + rng.gen_range(1..32)).min(out.len());
                out.drain(at..end);
            }
            2 => {
                let token = TOKENS[rng.gen_range(0..TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            3 if !out.is_empty() => {
                let end = (at + rng.gen_range(1..64)).min(out.len());
                let piece = out[at..end].to_vec();
                let times = rng.gen_range(1..50);
                for _ in 0..times {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            4 if !out.is_empty() => out[at] = rng.gen(),
            5 => out.truncate(at),
            _ => {
                // A long run of one digit or letter: ids, numbers, strings.
                let c = if rng.gen() { b'7' } else { b'a' };
                let n = rng.gen_range(1..4096);
                out.splice(at..at, std::iter::repeat(c).take(n));
            }
        }
        if out.len() > 1 << 20 {
            out.truncate(1 << 20);
        }
    }
    out
}
