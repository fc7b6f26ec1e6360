//! Image references as they appear in pod specs (`reference::parse`).
//!
//! Oracles: a parsed reference has a domain, a non-empty path, exactly one of tag and digest, and
//! is a fixed point (its `Display` parses back to itself, as containerd's normalised name does);
//! `repo_to_pull` and `scope` are built from domain and path; error positions point into the
//! input at the character they name; error texts stay short whatever the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regprobe::reference::{parse, ReferenceError};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match parse(s) {
        Ok(r) => {
            assert!(!r.domain().is_empty(), "empty domain for {s:?}");
            assert!(!r.path().is_empty(), "empty path for {s:?}");
            assert!(
                r.tag().is_some() != r.digest().is_some(),
                "tag and digest for {s:?}"
            );
            assert_eq!(r.repo_to_pull(), format!("{}/{}", r.domain(), r.path()));
            assert_eq!(r.scope(), format!("repository:{}:pull", r.path()));
            assert_eq!(r.reference(), r.digest().or(r.tag()).unwrap());
            let shown = r.to_string();
            assert_eq!(parse(&shown).as_ref(), Ok(&r), "{s:?} -> {shown:?}");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.len() < 512, "error text of {} bytes", text.len());
            match e {
                ReferenceError::InvalidCharacter {
                    position, found, ..
                }
                | ReferenceError::UppercaseRepository { position, found } => {
                    assert_eq!(
                        s.get(position..).and_then(|t| t.chars().next()),
                        Some(found),
                        "{s:?}: {text}"
                    );
                }
                ReferenceError::UnexpectedEnd { position, .. } => {
                    assert!(position <= s.len(), "{s:?}: {text}");
                }
                _ => {}
            }
        }
    }
});
