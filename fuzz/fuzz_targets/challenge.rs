//! `WWW-Authenticate` header lines (one per `\n`-separated line of the input).
//!
//! Oracles: each line yields at most one challenge, and parsing all lines at once equals parsing
//! them one by one then stably sorting by scheme (Bearer, Digest, Basic); parameter names are
//! non-empty lower-case RFC 7230 tokens; a line past `MAX_CHALLENGE_BYTES` parses as its prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regprobe::probe::challenge::{parse_challenges, Challenge, MAX_CHALLENGE_BYTES};

fn is_token_char(b: u8) -> bool {
    b > 31 && b < 127 && !b" \t\"(),/:;<=>?@[]\\{}".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let all = parse_challenges(lines.iter().copied());
    let mut one_by_one: Vec<Challenge> = Vec::new();
    for line in &lines {
        let got = parse_challenges([*line]);
        assert!(got.len() <= 1, "one line gave {} challenges", got.len());
        one_by_one.extend(got);
    }
    one_by_one.sort_by_key(|c| c.scheme);
    assert_eq!(all, one_by_one);
    for pair in all.windows(2) {
        assert!(pair[0].scheme <= pair[1].scheme, "not sorted");
    }
    for c in &all {
        for name in c.params.keys() {
            assert!(!name.is_empty(), "empty parameter name");
            assert!(
                name.bytes()
                    .all(|b| is_token_char(b) && !b.is_ascii_uppercase()),
                "parameter name {name:?} is not a lower-case token"
            );
            assert_eq!(c.param(name), c.params.get(name).map(String::as_str));
        }
    }
    // A long line is cut at the bound: repeat the first line past it.
    if let Some(first) = lines.first() {
        if !first.is_empty() && first.len() < 64 {
            let mut long = Vec::with_capacity(MAX_CHALLENGE_BYTES + 64);
            while long.len() <= MAX_CHALLENGE_BYTES {
                long.extend_from_slice(first);
            }
            let cut = &long[..MAX_CHALLENGE_BYTES];
            assert_eq!(parse_challenges([long.as_slice()]), parse_challenges([cut]));
        }
    }
});
